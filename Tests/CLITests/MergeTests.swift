import Foundation
import MLRABench
import XCTest

/// Issue 17, Slurm arrays of another shape: after an array of 4 tasks, a rerun with
/// 2 left stale task files beside the new ones, and the merge took them all in (6
/// rows for 4 configurations, exit 0). jobs/merge_csv.sh now refuses two
/// measurements of one configuration (resume key of docs/resume-key.txt and
/// tp_group) and rows of two array shapes, naming the files, with a non-zero exit.
final class MergeTests: XCTestCase {
    let grid = ["--variants", "mla,gqa", "--contexts", "64,128", "--tp", "1", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                "--kv-ranks", "64", "--q-rank", "16", "--kv-heads", "2", "--n-embd", "32", "--batch", "1", "--warmup", "0", "--steps", "2",
                "--scopes", "kernel", "--threads", "1", "--quiet"]
    var merge: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("jobs/merge_csv.sh").path
    }

    func task(_ dir: TempDir, _ name: String, _ i: Int, of n: Int) throws -> String {
        let out = dir.path(name)
        let r = try CLI.run(["sweep", "--out", out, "--calibration", calibration(dir), "--array-task", "\(i)", "--array-count", "\(n)"] + grid)
        XCTAssertEqual(r.status, 0, r.stderr)
        return out
    }

    func testMergeRefusesStaleTaskFilesOfAnotherArrayShape() throws {
        let dir = try TempDir()
        let four = try (0..<4).map { try task(dir, "old.task\($0).csv", $0, of: 4) }
        let two = try (0..<2).map { try task(dir, "new.task\($0).csv", $0, of: 2) }
        // One array's files merge: 4 configurations, each once.
        let ok = try CLI.run([merge, dir.path("m2.csv")] + two, executable: "/bin/sh")
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(AppendOnlyCSV.readRows(path: dir.path("m2.csv")).count, 4)
        // The new array's files with the old array's tasks 2 and 3 left beside them.
        let out = dir.path("mixed.csv")
        let mixed = try CLI.run([merge, out] + two + four[2...], executable: "/bin/sh")
        XCTAssertNotEqual(mixed.status, 0)
        XCTAssertTrue(mixed.stderr.contains("two array shapes") && mixed.stderr.contains("old.task2.csv"), mixed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written on refusal")
    }

    /// Two files of one shape that both measured a configuration (the same grid run
    /// twice into two files): refused, naming both places.
    func testMergeRefusesOneConfigurationMeasuredInTwoFiles() throws {
        let dir = try TempDir()
        let a = try task(dir, "a.csv", 0, of: 1), b = try task(dir, "b.csv", 0, of: 1)
        let r = try CLI.run([merge, dir.path("m.csv"), a, b], executable: "/bin/sh")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("same configuration") && r.stderr.contains("a.csv line 2") && r.stderr.contains("b.csv line 2"), r.stderr)
        // The same file twice is exact duplicates, dropped as before.
        let twice = try CLI.run([merge, dir.path("m.csv"), a, a], executable: "/bin/sh")
        XCTAssertEqual(twice.status, 0, twice.stderr)
        XCTAssertEqual(AppendOnlyCSV.readRows(path: dir.path("m.csv")).count, 4)
    }
}
