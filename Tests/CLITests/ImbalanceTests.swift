import Foundation
import MLRABench
import XCTest

/// The wait for the slowest rank is measured apart from the collective: a rank made
/// late on purpose (--inject-rank-delay-us, hidden) must show in imbalance_us, and the
/// collective itself must not absorb it.
final class ImbalanceTests: XCTestCase {
    func rows(_ path: String) -> [[String: String]] { AppendOnlyCSV.readRows(path: path) }

    func testAnInjectedRankDelayIsImbalanceNotAllReduce() throws {
        let dir = try TempDir()
        let out = dir.path("d.csv"), samples = dir.path("d.samples.csv")
        // 20 ms: far above what a 256-float all-reduce costs even on this loaded 2-core VM,
        // so the bounds below have generous slack (timing enters only as the delay's bound).
        let delayUs = 20_000.0
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--samples", samples, "--calibration", calibration(dir), "--quiet",
                                   "--isolate", "off", "--inject-rank-delay-us", "\(Int(delayUs))",
                                   "--variants", "mla,gqa", "--tp", "2", "--scopes", "layer", "--heads", "4", "--kv-ranks", "64",
                                   "--head-dim", "16", "--rope-dim", "8", "--kv-heads", "2", "--n-embd", "64", "--q-rank", "32",
                                   "--contexts", "64", "--batch", "1", "--warmup", "1", "--steps", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let all = rows(out)
        XCTAssertEqual(all.count, 2)
        for row in all {
            XCTAssertEqual(row["timing_mode"], "concurrent")
            // The barrier before the collective is no all-reduce: the plan's count holds.
            XCTAssertEqual(row["allreduce_count_per_step"], "1")
            let wait = try XCTUnwrap(Double(row["imbalance_us_median"] ?? ""), "imbalance_us_median: \(row)")
            let collective = try XCTUnwrap(Double(row["allreduce_us_median"] ?? ""))
            XCTAssertGreaterThanOrEqual(wait, 0.75 * delayUs, "the late rank's delay is the others' wait")
            XCTAssertLessThan(collective, 0.5 * delayUs, "the collective alone must not contain the wait")
            let p10 = try XCTUnwrap(Double(row["allreduce_us_p10"] ?? "")), p90 = try XCTUnwrap(Double(row["allreduce_us_p90"] ?? ""))
            XCTAssertTrue(p10 <= collective && collective <= p90, "\(p10) ≤ \(collective) ≤ \(p90)")
            XCTAssertGreaterThanOrEqual(Double(row["step_us_median"]!)!, 0.75 * delayUs, "the step still includes the wait")
        }
        let steps = rows(samples)
        XCTAssertEqual(steps.count, 2 * 5)
        // Per step too, in most steps (one step may lose part of the wait to the scheduler).
        for row in all {
            let waits = steps.filter { $0["config_id"] == row["config_id"] }.map { Double($0["imbalance_us"] ?? "") ?? 0 }
            XCTAssertEqual(waits.count, 5)
            XCTAssertGreaterThanOrEqual(waits.filter { $0 >= 0.75 * delayUs }.count, 3, "\(waits)")
        }
    }

    /// Kernel scope communicates nothing: the collective columns stay empty.
    func testKernelScopeLeavesTheCollectiveColumnsEmpty() throws {
        let dir = try TempDir()
        let out = dir.path("k.csv")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir), "--quiet", "--variants", "mla",
                                   "--tp", "2", "--scopes", "kernel", "--heads", "4", "--kv-ranks", "64", "--head-dim", "16",
                                   "--rope-dim", "8", "--n-embd", "64", "--q-rank", "32", "--contexts", "64", "--batch", "1",
                                   "--warmup", "0", "--steps", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for row in rows(out) {
            for column in ["allreduce_us_median", "allreduce_us_p10", "allreduce_us_p90", "imbalance_us_median"] {
                XCTAssertEqual(row[column], "", column)
            }
        }
    }

    func testANegativeDelayIsOneErrorLine() throws {
        let dir = try TempDir()
        let r = try CLI.mpirun(2, ["sweep", "--out", dir.path("n.csv"), "--calibration", calibration(dir),
                                   "--inject-rank-delay-us=-5", "--variants", "mla"])
        assertCleanError(r, contains: "--inject-rank-delay-us")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("n.csv")))
    }
}
