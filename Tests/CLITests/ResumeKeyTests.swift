import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 17, the resume key, by property: change any one setting that can change a
/// row and the configuration is measured again; change only the output path and
/// nothing is. Before: world size, dp, timing mode (--isolate), --seed, the
/// calibration and q_lora_rank-only changes were "already present".
final class ResumeKeyTests: XCTestCase {
    /// One configuration (mla, t = 1, kernel scope) on 2 ranks: 2 rows (dp = 2).
    let base = ["--variants", "mla", "--contexts", "64", "--tp", "1", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--batch", "2", "--warmup", "1", "--steps", "3",
                "--scopes", "kernel", "--threads", "1", "--seed", "0", "--isolate", "off", "--no-cold-cache", "--quiet"]

    /// Replaces the value of `flag` in `args`.
    func with(_ args: [String], _ flag: String, _ value: String) -> [String] {
        var a = args
        a[a.firstIndex(of: flag)! + 1] = value
        return a
    }

    func rows(_ path: String) -> [[String: String]] { AppendOnlyCSV.readRows(path: path) }

    func testChangingAnyOneSettingMeasuresAgainAndOnlyTheOutputPathDoesNot() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let otherCal = dir.path("cal2.json")
        var c2 = try Calibration.load(path: cal)
        c2.readGBs = 20
        try JSONEncoder().encode(c2).write(to: URL(fileURLWithPath: otherCal))
        let out = dir.path("r.csv")
        func sweep(_ n: Int, _ args: [String], out o: String = out, calibration c: String = cal) throws -> Int {
            let before = rows(o).count
            let r = try CLI.mpirun(n, ["sweep", "--out", o, "--calibration", c] + args, timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
            return rows(o).count - before
        }
        XCTAssertEqual(try sweep(2, base), 2)
        XCTAssertEqual(try sweep(2, base), 0, "the same command again measures nothing")

        // Each change alone measures the configuration again.
        let changes: [(String, Int, [String], String?)] = [
            ("world size 1", 1, base, nil),
            ("--isolate on (timing mode)", 2, with(base, "--isolate", "on"), nil),
            ("--seed 7", 2, with(base, "--seed", "7"), nil),
            ("--batch 4", 2, with(base, "--batch", "4"), nil),
            ("--threads 2", 2, with(base, "--threads", "2"), nil),
            ("--warmup 2", 2, with(base, "--warmup", "2"), nil),
            ("--steps 4", 2, with(base, "--steps", "4"), nil),
            ("--cold-cache", 2, base.map { $0 == "--no-cold-cache" ? "--cold-cache" : $0 }, nil),
            ("--q-rank 32", 2, with(base, "--q-rank", "32"), nil),
            // A CSV keeps the calibration of its first run (CalibrationStore): another one needs --recalibrate.
            ("another --calibration", 2, base + ["--recalibrate"], otherCal),
        ]
        for (what, n, args, c) in changes {
            XCTAssertGreaterThan(try sweep(n, args, calibration: c ?? cal), 0, "\(what) must be measured again")
        }
        // dp changes with the world size at a fixed tp: the world-size row above has dp 1.
        XCTAssertEqual(Set(rows(out).map { $0["dp"] ?? "" }), ["1", "2"])
        // Every row is one key once, and the row records every setting of the key.
        let keys = rows(out).map { SweepConfig.key(row: $0) + " tp_group=\($0["tp_group"] ?? "")" }
        XCTAssertEqual(Set(keys).count, keys.count)
        for row in rows(out) {
            for column in SweepConfig.keyColumns { XCTAssertFalse(row[column]?.isEmpty ?? true, "\(column) must be recorded") }
            XCTAssertEqual(row["config_id"], SweepConfig.configID(key: SweepConfig.key(row: row)))
        }

        // Only the output path differs: the copied file resumes completely.
        let moved = dir.path("moved.csv")
        try FileManager.default.copyItem(atPath: out, toPath: moved)
        XCTAssertEqual(try sweep(2, base, out: moved), 0, "the output path is not part of the key")
        XCTAssertEqual(try sweep(2, with(base, "--seed", "7"), out: moved), 0)
    }

    /// A task file records its array shape; resuming it with another shape is refused
    /// with the file untouched (it would measure what another task file holds).
    func testATaskFileOfAnotherArrayShapeIsRefused() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let out = dir.path("t0.csv")
        let grid = with(base, "--tp", "1,2")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", cal, "--array-task", "0", "--array-count", "2"] + grid)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(rows(out).map { "\($0["array_task"] ?? "")/\($0["array_count"] ?? "")" }), ["0/2"])
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        assertCleanError(try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", cal, "--array-task", "0", "--array-count", "1"] + grid),
                         contains: "holds rows of array task 0 of 2")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), before)
    }

    /// Samples whose row never reached --out (a run killed between the two appends)
    /// are cut off by the next run before it measures: each configuration's samples
    /// are on disk exactly once, with its row.
    func testSamplesWithoutTheirRowAreCutOffOnResume() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let out = dir.path("r.csv"), samples = dir.path("s.csv")
        let grid = with(base, "--contexts", "64,128")
        XCTAssertEqual(try CLI.mpirun(2, ["sweep", "--out", out, "--samples", samples, "--calibration", cal] + with(base, "--contexts", "64")).status, 0)
        // What a kill between the samples and the row leaves: the samples of the next
        // configuration (context 128), and no row.
        let full = dir.path("full.csv"), fullSamples = dir.path("fs.csv")
        XCTAssertEqual(try CLI.mpirun(2, ["sweep", "--out", full, "--samples", fullSamples, "--calibration", cal] + grid).status, 0)
        let orphans = rows(fullSamples).filter { $0["context"] == "128" }
        XCTAssertEqual(orphans.count, 2 * 3)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: samples))
        handle.seekToEndOfFile()
        handle.write(Data(orphans.map { r in ResultsSchema.sampleColumns.map { csvEscape(r[$0] ?? "") }.joined(separator: ",") + "\n" }.joined().utf8))
        handle.closeFile()
        XCTAssertEqual(rows(samples).count, 2 * 2 * 3)

        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--samples", samples, "--calibration", cal] + grid.filter { $0 != "--quiet" })
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("cut off 6 samples"), r.stderr)
        let ids = rows(out).map { "\($0["run_id"] ?? "") \($0["config_id"] ?? "")" }
        let sampleIDs = rows(samples).map { "\($0["run_id"] ?? "") \($0["config_id"] ?? "")" }
        XCTAssertEqual(rows(out).count, 2 * 2)
        XCTAssertEqual(sampleIDs.count, rows(out).count * 3, "3 samples per row, no more")
        XCTAssertTrue(Set(sampleIDs).isSubset(of: Set(ids)), "every sample belongs to a row")
    }
}
