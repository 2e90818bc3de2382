import Foundation
import MLRABench
import XCTest

/// `mlra bench --format csv` names the quantities a sweep row also has as the sweep does,
/// and validates before it times, as the sweep does.
final class BenchColumnsTests: XCTestCase {
    static let shared = ["variant", "tp", "context", "batch", "kv_dtype", "threads", "cold_cache", "warmup_steps", "timed_steps",
                         "validation", "validation_max_err", "step_us_median", "step_us_p10", "step_us_p90", "step_us_min", "step_us_max",
                         "kernel_bytes_per_step", "kernel_flops_per_step", "achieved_gbs", "achieved_gflops",
                         "calib_threads", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops", "calib_fma_width",
                         "roofline_us", "roofline_fraction"]

    func testBenchAndSweepRowsOfOneConfigurationShareTheirColumnNames() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let bench = try CLI.run(["bench", "--variant", "mla", "--tp", "1", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                                 "--kv-rank", "64", "--context", "64", "--kv-dtype", "bf16", "--warmup", "1", "--steps", "3",
                                 "--calibration", cal, "--format", "csv"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let lines = bench.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, bench.stdout)
        let header = parseCSVLine(lines[0])
        let b = Dictionary(uniqueKeysWithValues: zip(header, parseCSVLine(lines[1])))
        for old in ["lat_us_median", "achieved_GBs", "cal_read_GBs", "kv_bytes_per_step", "flops_per_step", "cache_mode"] {
            XCTAssertFalse(header.contains(old), "bench still writes \(old)")
        }
        // One name set: every bench column is a sweep column, except these quantities the sweep has not.
        XCTAssertEqual(Set(header).subtracting(ResultsSchema.columns),
                       ["rank", "kernel", "tile", "cache_sets", "blas_core", "roofline_limit", "peak_rss_bytes", "baseline_rss_bytes",
                        "resident_needed_bytes", "rss_ratio"])

        let out = dir.path("s.csv")
        let sweep = try CLI.mpirun(1, ["sweep", "--out", out, "--calibration", cal, "--quiet", "--variants", "mla", "--tp", "1",
                                       "--scopes", "kernel", "--heads", "4", "--head-dim", "16", "--rope-dim", "8", "--kv-ranks", "64",
                                       "--n-embd", "64", "--q-rank", "32", "--contexts", "64", "--kv-dtypes", "bf16", "--batch", "1",
                                       "--warmup", "1", "--steps", "3"])
        XCTAssertEqual(sweep.status, 0, sweep.stderr)
        let s = try XCTUnwrap(AppendOnlyCSV.readRows(path: out).first)
        for column in Self.shared {
            XCTAssertTrue(header.contains(column), "bench lacks \(column)")
            XCTAssertTrue(ResultsSchema.columns.contains(column), "the sweep lacks \(column)")
        }
        // The same configuration: the settings and the plan's numbers agree cell for cell.
        for column in ["variant", "tp", "context", "batch", "kv_dtype", "threads", "cold_cache", "warmup_steps", "timed_steps",
                       "validation", "kernel_bytes_per_step", "kernel_flops_per_step", "calib_threads", "calib_fma_width"] {
            XCTAssertEqual(b[column], s[column], column)
        }
        for column in ["calib_read_gbs", "calib_sgemm_gflops"] { XCTAssertEqual(Double(b[column]!), Double(s[column]!), column) }
    }

    func testBenchValidatesBeforeTiming() throws {
        let dir = try TempDir()
        let r = try CLI.run(["bench", "--variant", "mlra4", "--tp", "2", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                             "--kv-rank", "64", "--context", "64", "--steps", "2", "--calibration", calibration(dir),
                             "--format", "csv", "--inject-validation-error"])
        assertCleanError(r, contains: "validation failed for mlra4 kernel tp=2")
        XCTAssertEqual(r.stdout, "", "no row for a configuration that failed validation")
    }
}
