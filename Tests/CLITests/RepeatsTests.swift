import Foundation
import MLRABench
import XCTest

/// `mlra sweep --repeats R`: every configuration R times, interleaved over the grid, a
/// `repeat` column in the resume key (a rerun resumes at the right repeat), the spread
/// of each measurement on the progress line and the wide ones listed at the end.
final class RepeatsTests: XCTestCase {
    func rows(_ path: String) -> [[String: String]] { AppendOnlyCSV.readRows(path: path) }

    /// Two kernel-scope configurations at tp 1, batch 1 (one TP group: one row each).
    func grid(_ out: String, _ cal: String) -> [String] {
        ["sweep", "--out", out, "--calibration", cal, "--variants", "mla,gqa", "--tp", "1", "--scopes", "kernel",
         "--heads", "4", "--kv-ranks", "64", "--head-dim", "16", "--rope-dim", "8", "--kv-heads", "2", "--n-embd", "64",
         "--q-rank", "32", "--contexts", "64", "--batch", "1", "--warmup", "0", "--steps", "3"]
    }

    func testRepeatsInterleaveAndAResumeStartsAtTheMissingRepeat() throws {
        let dir = try TempDir()
        let out = dir.path("r.csv"), samples = dir.path("r.samples.csv"), cal = try calibration(dir)
        let first = try CLI.mpirun(2, grid(out, cal) + ["--samples", samples])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(rows(out).map { $0["repeat"]! }, ["0", "0"], "without --repeats: one repeat, numbered 0")
        XCTAssertTrue(first.stderr.contains("p90/p10"), "the progress line shows the spread: \(first.stderr)")

        // The same grid with three repeats into the same files: repeat 0 is there, 1 and 2 are measured.
        let second = try CLI.mpirun(2, grid(out, cal) + ["--samples", samples, "--repeats", "3", "--spread-warn", "1"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("4 measured, 2 already present"), second.stderr)
        let all = rows(out)
        // Interleaved: the whole grid once, then again, then again.
        XCTAssertEqual(all.map { "\($0["variant"]!)/\($0["repeat"]!)" }, ["mla/0", "gqa/0", "mla/1", "gqa/1", "mla/2", "gqa/2"])
        XCTAssertEqual(Set(all.map { SweepConfig.key(row: $0) }).count, 6, "each repeat is a measurement of its own")
        XCTAssertEqual(Set(all.map { $0["config_id"]! }).count, 6)
        let steps = rows(samples)
        XCTAssertEqual(steps.count, 6 * 3)
        for row in all {
            XCTAssertEqual(steps.filter { $0["config_id"] == row["config_id"] }.map { $0["repeat"]! }, [String](repeating: row["repeat"]!, count: 3))
        }
        // The closing warning lists exactly this run's measurements whose p90/p10 exceeds the threshold.
        let wide = all.suffix(4).filter { Double($0["step_us_p90"]!)! / Double($0["step_us_p10"]!)! > 1 }
        let warning = second.stderr.split(separator: "\n").first { $0.hasPrefix("mlra: warning:") && $0.contains("--spread-warn") }
        if wide.isEmpty { XCTAssertNil(warning, second.stderr) } else {
            let line = try XCTUnwrap(warning, second.stderr)
            XCTAssertTrue(line.contains("\(wide.count) measurement"), String(line))
            for row in wide { XCTAssertTrue(line.contains("\(row["variant"]!) kernel") && line.contains("rep \(row["repeat"]!)/3"), String(line)) }
        }

        // Everything present: a third run measures nothing.
        let third = try CLI.mpirun(2, grid(out, cal) + ["--samples", samples, "--repeats", "3", "--quiet"])
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertEqual(rows(out).count, 6)
    }

    func testRepeatsIsASpecKeyAndBadCountsAreOneErrorLine() throws {
        let dir = try TempDir()
        let printed = try CLI.run(["sweep", "--preset", "quick", "--repeats", "3", "--print-spec", "--out", dir.path("p.csv")])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertTrue(printed.stdout.contains("\"repeats\" : 3"), printed.stdout)
        let spec = dir.write("s.json", #"{"repeats": 2, "defaults": {}, "grids": [{"variants": ["mla"]}]}"#)
        let fromFile = try CLI.run(["sweep", "--spec", spec, "--print-spec", "--out", dir.path("p.csv")])
        XCTAssertTrue(fromFile.stdout.contains("\"repeats\" : 2"), fromFile.stdout + fromFile.stderr)
        for bad in [["--repeats", "0"], ["--repeats", "1001"], ["--spec", dir.write("b.json", #"{"repeats": 0, "defaults": {}, "grids": [{}]}"#)],
                    ["--spread-warn", "0.5"]] {
            let r = try CLI.run(["sweep", "--out", dir.path("b.csv"), "--calibration", calibration(dir), "--variants", "mla"] + bad)
            assertCleanError(r, contains: bad[0] == "--spread-warn" ? "--spread-warn" : "repeats")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("b.csv")), "\(bad)")
        }
    }
}
