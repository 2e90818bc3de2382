import Foundation
import MLRABench
import XCTest

/// One calibration per CSV: the first run into a file measures (or takes --calibration)
/// and stores it beside the file; resumes and later runs reuse it, with the same
/// calib_source, unless --recalibrate.
final class CalibrationStoreTests: XCTestCase {
    func rows(_ path: String) -> [[String: String]] { AppendOnlyCSV.readRows(path: path) }

    func grid(_ out: String, contexts: String) -> [String] {
        ["sweep", "--out", out, "--variants", "mla", "--tp", "1", "--scopes", "kernel", "--heads", "4", "--kv-ranks", "64",
         "--head-dim", "16", "--rope-dim", "8", "--n-embd", "64", "--q-rank", "32", "--contexts", contexts, "--batch", "1",
         "--warmup", "0", "--steps", "2"]
    }

    /// The quick preset's calibration (1–2 s; the full one took minutes on this loaded VM),
    /// its grid replaced in every grid by the flags above.
    let quick = ["--preset", "quick"]

    static let calibColumns = ["calib_threads", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops",
                               "calib_fma_width", "calib_source", "roofline_us"]

    /// Two measured calibrations never agree to six digits: equal columns mean the second run reused the first's.
    func testAResumeReusesTheMeasuredCalibrationStoredBesideTheCSV() throws {
        let dir = try TempDir()
        let out = dir.path("c.csv")
        let first = try CLI.mpirun(2, grid(out, contexts: "64") + quick)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("calibration (1 thread)"), first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: CalibrationStore.path(for: out)))
        let stored = try XCTUnwrap(try CalibrationStore.load(for: out))
        XCTAssertEqual(stored.cpuSource, "measured-quick")

        let second = try CLI.mpirun(2, grid(out, contexts: "64,128") + quick)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertFalse(second.stderr.contains("calibration (1 thread)"), "the resume must not measure again: \(second.stderr)")
        XCTAssertTrue(second.stderr.contains("1 measured, 1 already present"), second.stderr)
        let all = rows(out)
        XCTAssertEqual(all.map { $0["context"]! }, ["64", "128"])
        for column in Self.calibColumns where column != "roofline_us" {
            XCTAssertEqual(all[0][column], all[1][column], "\(column): both runs' rows are held to one calibration")
        }
        XCTAssertEqual(all[1]["calib_read_gbs"], fmt6(stored.cpu["1"]!.readGBs))
        XCTAssertEqual(try CalibrationStore.load(for: out), stored, "a reused store is left as it was")

        // --recalibrate measures again and replaces the store; rows already there stay skipped.
        let third = try CLI.mpirun(2, grid(out, contexts: "64,256") + quick + ["--recalibrate"])
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertTrue(third.stderr.contains("calibration (1 thread)"), third.stderr)
        XCTAssertNotEqual(try CalibrationStore.load(for: out), stored)
        XCTAssertEqual(rows(out).count, 3)
    }

    /// A --calibration file is stored too; another file later is refused before anything is
    /// touched (its rows would be held to another roofline), and a damaged store is refused.
    func testAnotherCalibrationOrADamagedStoreIsOneErrorLine() throws {
        let dir = try TempDir()
        let out = dir.path("f.csv")
        let cal = try calibration(dir)
        XCTAssertEqual(try CLI.mpirun(2, grid(out, contexts: "64") + ["--calibration", cal, "--quiet"]).status, 0)
        let before = try String(contentsOfFile: out, encoding: .utf8)
        // Without --calibration, the stored file calibration (and its calib_source) serves the resume.
        let resumed = try CLI.mpirun(2, grid(out, contexts: "64,128") + ["--quiet"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let all = rows(out)
        XCTAssertEqual(all.count, 2)
        XCTAssertEqual(Set(all.map { $0["calib_source"]! }).count, 1)
        XCTAssertTrue(all[1]["calib_source"]!.hasPrefix("file:"))
        XCTAssertEqual(all[1]["calib_sgemm_gflops"], "50")

        var other = try JSONDecoder().decode(Calibration.self, from: Data(contentsOf: URL(fileURLWithPath: cal)))
        other.readGBs = 11
        let otherPath = dir.path("other.json")
        try JSONEncoder().encode(other).write(to: URL(fileURLWithPath: otherPath))
        let afterResume = try String(contentsOfFile: out, encoding: .utf8)
        let refused = try CLI.mpirun(2, grid(out, contexts: "512") + ["--calibration", otherPath])
        assertCleanError(refused, contains: "--recalibrate")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), afterResume)
        XCTAssertTrue(afterResume.hasPrefix(before))

        _ = dir.write("f.csv.calibration.json", "{not json")
        let damaged = try CLI.mpirun(2, grid(out, contexts: "512") + ["--calibration", cal])
        assertCleanError(damaged, contains: "not a calibration store")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), afterResume)
    }

    /// A CSV whose calibration store and --calibration file were written before the
    /// calibration keys' rename (readGBs, cpuSource, …) resumes as it was: the file, in
    /// its old form or the new, is the stored calibration, and the rows already there are found.
    func testAStoreAndAFileWrittenWithTheOldKeyNamesResume() throws {
        let dir = try TempDir()
        let out = dir.path("o.csv")
        let cal = try calibration(dir)
        XCTAssertEqual(try CLI.mpirun(2, grid(out, contexts: "64") + ["--calibration", cal, "--quiet"]).status, 0)
        let source = try XCTUnwrap(try CalibrationStore.load(for: out)).cpuSource
        // Both as the harness wrote them before the rename.
        let old = #"{"arrayBytes":4194304,"blasCore":"test","fmaGFlops":20,"fmaWidth":"avx2","llcBytes":1048576,"readGBs":10,"sgemmGFlops":50,"threads":1,"triadGBs":9}"#
        let oldCal = dir.write("old.json", old)
        _ = dir.write("o.csv.calibration.json", #"{"cpu": {"1": \#(old)}, "cpuSource": "\#(source)"}"#)
        for (c, contexts) in [(cal, "64,128"), (oldCal, "64,128,256")] {
            let r = try CLI.mpirun(2, grid(out, contexts: contexts) + ["--calibration", c, "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let all = rows(out)
        XCTAssertEqual(all.map { $0["context"]! }, ["64", "128", "256"], "each configuration once: the resumes found the rows")
        XCTAssertEqual(Set(all.map { $0["calib_source"]! }), [source], "one calibration identity, old names or new")
    }

    func fmt6(_ x: Double) -> String { String(format: "%.6g", x) }
}
