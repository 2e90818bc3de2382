import Foundation
import MLRABench
import MLRACore
import XCTest

/// `mlra bench --format csv` names the quantities a sweep row also has as the sweep does,
/// and validates before it times, as the sweep does.
final class BenchColumnsTests: XCTestCase {
    static let shared = ["variant", "tp", "context", "batch", "kv_dtype", "threads", "cold_cache", "warmup_steps", "timed_steps",
                         "kernel_math", "validation", "validation_max_err", "validation_atol", "validation_rtol", "step_us_median", "step_us_p10", "step_us_p90", "step_us_min", "step_us_max",
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
                       "kernel_math", "validation", "validation_atol", "validation_rtol", "kernel_bytes_per_step", "kernel_flops_per_step", "calib_threads", "calib_fma_width"] {
            XCTAssertEqual(b[column], s[column], column)
        }
        for column in ["calib_read_gbs", "calib_sgemm_gflops"] { XCTAssertEqual(Double(b[column]!), Double(s[column]!), column) }
    }

    /// `--math`: the row says which math the products ran in and the tolerance its check
    /// used; auto takes bf16 products only where this CPU runs them faster (else f32, as on a
    /// CPU without AVX-512 BF16); the sweep records the same, and a spec's "math" key.
    func testBenchAndSweepRecordTheMathTheirProductsRanIn() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let shape = ["--variant", "mla", "--tp", "1", "--heads", "20", "--head-dim", "16", "--rope-dim", "8", "--kv-rank", "64",
                     "--context", "300", "--kv-dtype", "bf16", "--warmup", "1", "--steps", "2", "--calibration", cal, "--format", "csv"]
        func bench(_ extra: [String]) throws -> [String: String] {
            let r = try CLI.run(["bench"] + shape + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let lines = r.stdout.split(separator: "\n").map(String.init)
            return Dictionary(uniqueKeysWithValues: zip(parseCSVLine(lines[0]), parseCSVLine(lines.last!)))
        }
        let f32 = Tolerance.kernelAgreement(math: .f32), bf16 = Tolerance.kernelAgreement(math: .bf16)
        func tolerance(_ t: Tolerance) -> [String?] { [String(format: "%.3g", t.atol), String(format: "%.3g", t.rtol)] }
        var cases: [([String], ProductMath)] = [([], .f32), (["--math", "f32"], .f32), (["--math", "auto", "--isa", "portable"], .f32),
                                                (["--math", "auto"], ProductMath.bf16Outruns ? .bf16 : .f32)]
        if ProductMath.bf16.isSupported {
            cases += [(["--math", "bf16"], .bf16), (["--math", "bf16", "--kv-dtype", "f16"], .f32),
                      (["--math", "bf16", "--simd-max-heads", "32"], .f32)]
        } else {
            assertCleanError(try CLI.run(["bench"] + shape + ["--math", "bf16"]), contains: "--math bf16: this CPU has no AVX-512 BF16")
        }
        for (extra, math) in cases {
            let row = try bench(extra)
            XCTAssertEqual(row["kernel_math"], math.rawValue, "\(extra)")
            XCTAssertEqual([row["validation_atol"], row["validation_rtol"]], tolerance(math == .bf16 ? bf16 : f32), "\(extra)")
        }
        let request = ProductMath.bf16.isSupported ? "bf16" : "auto"
        let spec = dir.path("spec.json")
        try #"{"defaults": {}, "grids": [{"variants": ["mla"], "heads": [20], "head_dim": 16, "rope_dim": 8, "kv_ranks": [64], "q_lora_rank": 32, "n_embd": 64, "contexts": [300], "kv_dtypes": ["bf16", "f32"], "scopes": ["kernel", "layer"], "warmup": 1, "steps": 2, "math": "\#(request)"}]}"#
            .write(toFile: spec, atomically: true, encoding: .utf8)
        let out = dir.path("s.csv")
        let sweep = try CLI.mpirun(1, ["sweep", "--spec", spec, "--out", out, "--calibration", cal, "--quiet"])
        XCTAssertEqual(sweep.status, 0, sweep.stderr)
        let rows = AppendOnlyCSV.readRows(path: out)
        XCTAssertEqual(rows.count, 4)
        let expected = ProductMath.bf16.isSupported || ProductMath.bf16Outruns ? "bf16" : "f32"
        for row in rows {
            let what = "\(row["scope"]!) \(row["kv_dtype"]!)"
            XCTAssertEqual(row["kernel_math"], row["kv_dtype"] == "bf16" ? expected : "f32", what)
            let math: ProductMath = row["kernel_math"] == "bf16" ? .bf16 : .f32
            let held = row["scope"] == "kernel" ? Tolerance.kernelAgreement(math: math)
                : Tolerance.layerOutput(cache: row["kv_dtype"] == "bf16" ? .bf16 : .f32, math: math)
            XCTAssertEqual([row["validation_atol"], row["validation_rtol"]], tolerance(held), what)
        }
        // --math f32 over the spec's: another measurement (kernel_math is in the resume key), appended.
        if expected == "bf16" {
            let again = try CLI.mpirun(1, ["sweep", "--spec", spec, "--out", out, "--calibration", cal, "--quiet", "--math", "f32"])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(AppendOnlyCSV.readRows(path: out).map { $0["kernel_math"]! }, ["bf16", "f32", "bf16", "f32", "f32", "f32"])
        }
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
