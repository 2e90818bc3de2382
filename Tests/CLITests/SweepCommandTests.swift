import Foundation
import MLRABench
import MLRACore
import XCTest

/// `mlra sweep` under real mpirun: schema, resume after SIGKILL, sub-communicators,
/// skipped combinations, validation that trips, the quick preset's budget.
final class SweepCommandTests: XCTestCase {
    /// A small grid: every config takes a fraction of a second.
    func grid(contexts: String = "256", tp: String = "1,2,4", batch: Int = 4) -> [String] {
        ["--variants", "mla,mlra4,gqa", "--contexts", contexts, "--tp", tp, "--heads", "4", "--kv-ranks", "64",
         "--head-dim", "16", "--rope-dim", "8", "--kv-heads", "2", "--n-embd", "64", "--q-rank", "32",
         "--scopes", "kernel,layer", "--batch", "\(batch)", "--kv-dtypes", "bf16", "--warmup", "1", "--steps", "3"]
    }
    var small: [String] { grid() }

    func rows(_ path: String) -> [[String: String]] { AppendOnlyCSV.readRows(path: path) }

    func key(_ r: [String: String]) -> String {
        (SweepConfig.keyColumns + ["tp_group"]).map { r[$0] ?? "" }.joined(separator: "|")
    }

    func testSchemaUnitsAndTheDocumentAgree() throws {
        let dir = try TempDir()
        let out = dir.path("s.csv")
        let r = try CLI.mpirun(4, ["sweep", "--out", out, "--samples", dir.path("samples.csv"), "--calibration", calibration(dir), "--quiet"] + small)
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertEqual(String(text.prefix { $0 != "\n" }), ResultsSchema.columns.joined(separator: ","))
        // The schema document lists exactly these columns, in this order.
        let doc = try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/csv-schema.md").path, encoding: .utf8)
        let section = doc.components(separatedBy: "## Raw samples")[0]
        let documented = section.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| column") }
            .flatMap { $0.split(separator: "|")[0].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        XCTAssertEqual(documented, ResultsSchema.columns)
        // …and its title names this version (the Slurm scripts read it from there).
        XCTAssertTrue(doc.hasPrefix("# Sweep CSV schema (version \(ResultsSchema.version))"), "docs/csv-schema.md title")

        let all = rows(out)
        // 3 variants × 3 TP × 2 scopes; each configuration has one row per TP group (4/t groups).
        XCTAssertEqual(all.count, 2 * 3 * (4 + 2 + 1))
        for row in all {
            XCTAssertEqual(row["validation"], "pass")
            XCTAssertEqual(row["world_size"], "4")
            XCTAssertEqual(row["calib_threads"], "1")
            XCTAssertEqual(row["calib_sgemm_gflops"], "50", "rows carry the calibration they are held to")
            XCTAssertEqual(row["schema_version"], ResultsSchema.version)
            XCTAssertEqual(row["calib_fma_width"], "avx2", "rows carry the width of the calibration's FMA loop")
            XCTAssertEqual(row["device"], "cpu", "the default device")
            XCTAssertEqual(row["gpu_name"], "", "GPU columns are empty on cpu rows")
            // The kernel the sweep built: the CPU's best loops, in kernel and layer scope alike.
            XCTAssertEqual(row["kernel_isa"], KernelISA.detected.rawValue)
            XCTAssertTrue(KernelISA.allCases.map(\.rawValue).contains(row["kernel_isa"] ?? ""), row["kernel_isa"] ?? "nil")
            XCTAssertEqual(Int(row["dp"]!)! * Int(row["tp"]!)!, 4)
            let median = Double(row["step_us_median"]!)!
            XCTAssertTrue(Double(row["step_us_p10"]!)! <= median && median <= Double(row["step_us_p90"]!)!)
            XCTAssertTrue(Double(row["step_us_min"]!)! <= Double(row["step_us_p10"]!)!)
            // Units: achieved GB/s is bytes per step over the kernel median in µs.
            let gbs = Double(row["kernel_bytes_per_step"]!)! / Double(row["kernel_us_median"]!)! / 1e3
            XCTAssertEqual(Double(row["achieved_gbs"]!)!, gbs, accuracy: gbs * 1e-4)
            XCTAssertEqual(Int(row["kv_bytes_per_token"]!)!, 2 * Int(row["kv_elems_per_token"]!)!)
            if row["scope"] == "kernel" { XCTAssertEqual(row["allreduce_us_median"], "") }
            if row["scope"] == "layer" && row["tp"] != "1" { XCTAssertEqual(row["allreduce_count_per_step"], "1") }
        }
        // Throughput: each row has its group's figure; the job's is their sum, on every row of the configuration.
        for rowsOfOne in Dictionary(grouping: all, by: { $0["config_id"]! }).values {
            let job = Set(rowsOfOne.map { $0["job_tokens_per_s"]! })
            XCTAssertEqual(job.count, 1, "one job figure per configuration")
            let sum = rowsOfOne.map { Double($0["group_tokens_per_s"]!)! }.reduce(0, +), total = Double(job.first!)!
            XCTAssertEqual(sum, total, accuracy: total * 1e-4, "the groups' figures add up to the job's")
            let seqs = Double(rowsOfOne[0]["batch"]!)! / Double(rowsOfOne[0]["dp"]!)!
            XCTAssertEqual(Double(rowsOfOne[0]["group_tokens_per_s"]!)!, seqs / Double(rowsOfOne[0]["step_us_median"]!)! * 1e6,
                           accuracy: total * 1e-4)
        }
        // Raw samples: one row per timed step of every TP group.
        XCTAssertEqual(rows(dir.path("samples.csv")).count, all.count * 3)
    }

    /// Issue 14: layer and model rows say which cache mode ran: cold by default (the
    /// rotated sets), warm with --cold-cache false; both validated against the reference.
    func testLayerAndModelRowsSayWhichCacheModeRan() throws {
        let dir = try TempDir()
        let args = ["--calibration", try calibration(dir), "--quiet", "--no-noise-probe", "--variants", "gqa", "--scopes", "layer,model",
                    "--tp", "1,2", "--heads", "4", "--head-dim", "16", "--kv-heads", "2", "--n-embd", "64", "--batch", "2",
                    "--contexts", "64", "--kv-dtypes", "bf16", "--warmup", "1", "--steps", "3"]
        for (flag, mode) in [([String](), "true"), (["--cold-cache", "false"], "false")] {
            let out = dir.path("mode-\(mode).csv")
            let r = try CLI.mpirun(2, ["sweep", "--out", out] + args + flag)
            XCTAssertEqual(r.status, 0, r.stderr)
            let all = rows(out)
            XCTAssertEqual(Set(all.map { $0["scope"]! }), ["layer", "model"])
            XCTAssertEqual(all.count, 2 * (2 + 1), "2 scopes × (2 groups at tp 1, 1 at tp 2)")
            for row in all {
                XCTAssertEqual(row["cold_cache"], mode, "\(row["scope"]!) tp=\(row["tp"]!)")
                XCTAssertEqual(row["validation"], "pass")
            }
        }
    }

    /// SIGKILL a rank mid-sweep: the job ends, every finished row is intact; the rerun
    /// measures only what is missing and leaves each configuration exactly once.
    func testKilledSweepResumesWithEveryConfigurationOnce() throws {
        let dir = try TempDir()
        let out = dir.path("r.csv")
        let cal = try calibration(dir)
        let args = ["-n", "4", "--oversubscribe", "--bind-to", "none", CLI.mlra, "sweep", "--out", out, "--calibration", cal, "--quiet"]
            + grid(contexts: "256,512")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while rows(out).count < 5 && Date() < deadline && p.isRunning { usleep(50_000) }
        // Kill one rank (a child of mpirun) with SIGKILL: the job must end on its own.
        let children = try childPIDs(of: p.processIdentifier)
        XCTAssertFalse(children.isEmpty)
        kill(children[0], SIGKILL)
        let killDeadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < killDeadline { usleep(50_000) }
        XCTAssertFalse(p.isRunning, "the job did not end within 30 s of a rank's death")
        if p.isRunning { p.terminate() }
        let before = rows(out)
        XCTAssertGreaterThanOrEqual(before.count, 5)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"), "no partial row")

        let r = try CLI.run(args, executable: "/usr/bin/mpirun", timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr)
        let after = rows(out)
        XCTAssertEqual(after.count, 2 * 2 * 3 * (4 + 2 + 1))
        XCTAssertEqual(Set(after.map(key)).count, after.count, "a configuration appears twice")
        XCTAssertEqual(Array(after.prefix(before.count)).map(key), before.map(key), "finished rows must be kept as they were")
    }

    /// TP groups inside one 4-rank job give the same per-configuration plan numbers as a
    /// job of exactly t ranks; only the number of groups (dp) differs.
    func testSubCommunicatorSweepsMatchSeparateRuns() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let joint = dir.path("joint.csv"), alone = dir.path("alone.csv")
        XCTAssertEqual(try CLI.mpirun(4, ["sweep", "--out", joint, "--calibration", cal, "--quiet"] + grid(tp: "2", batch: 4)).status, 0)
        // The same sequences per group: batch 4 over 2 groups = batch 2 over 1 group.
        XCTAssertEqual(try CLI.mpirun(2, ["sweep", "--out", alone, "--calibration", cal, "--quiet"] + grid(tp: "2", batch: 2)).status, 0)
        let planColumns = ["variant", "scope", "tp", "context", "n_head", "n_embd", "kv_elems_per_token", "kv_bytes_per_token", "kv_bytes_per_rank",
                           "kernel_bytes_per_step", "kernel_flops_per_step", "weight_bytes_per_rank", "allreduce_bytes_per_step",
                           "allreduce_count_per_step", "validation"]
        func shape(_ rs: [[String: String]]) -> Set<String> { Set(rs.map { r in planColumns.map { r[$0]! }.joined(separator: "|") }) }
        let j = rows(joint), a = rows(alone)
        XCTAssertEqual(j.count, 2 * a.count)
        XCTAssertEqual(shape(j), shape(a))
        XCTAssertEqual(Set(j.map { $0["dp"]! }), ["2"])
        XCTAssertEqual(Set(a.map { $0["dp"]! }), ["1"])
    }

    /// A sweep in which every configuration is skipped measured nothing: it says so and exits 1
    /// (a job script must not report success); the file holds no row.
    func testASweepWhoseEveryConfigurationIsSkippedFails() throws {
        let dir = try TempDir()
        let out = dir.path("none.csv")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir), "--variants", "mlra4", "--tp", "3",
                                   "--heads", "4", "--contexts", "64", "--kv-ranks", "64", "--head-dim", "16", "--rope-dim", "8",
                                   "--n-embd", "64", "--q-rank", "16", "--batch", "2", "--steps", "2", "--warmup", "0", "--no-noise-probe"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("mlra: error: every one of the 1 configuration(s) was skipped (the reasons are above)"), r.stderr)
        XCTAssertEqual(rows(out).count, 0)
    }

    /// --print-spec needs no --out (the README's example); without --print-spec, --out is
    /// required, one usage line; a misspelt spec key names the key it was probably meant to be.
    func testPrintSpecNeedsNoOutAndAMisspeltKeyIsNamed() throws {
        let spec = try CLI.run(["sweep", "--preset", "quick", "--print-spec"])
        XCTAssertEqual(spec.status, 0, spec.stderr)
        XCTAssertTrue(spec.stdout.contains("\"grids\""), spec.stdout)
        // Every default in effect is printed, those the preset does not set included.
        for key in ["\"devices\"", "\"repeats\" : 1", "\"cold_cache\"", "\"warmup\"", "\"steps\""] {
            XCTAssertTrue(spec.stdout.contains(key), "\(key) missing from\n\(spec.stdout)")
        }
        let missing = try CLI.run(["sweep", "--preset", "quick"])
        XCTAssertEqual(missing.status, 64, missing.stderr)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("--out is required"), missing.stderr)
        let dir = try TempDir()
        let file = dir.path("s.json")
        try #"{"grids": [{"head": [64], "variants": ["mla"]}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let typo = try CLI.run(["sweep", "--spec", file, "--out", dir.path("t.csv")])
        XCTAssertEqual(typo.status, 1, typo.stderr)
        XCTAssertTrue(typo.stderr.contains("spec key 'grids.0.head' is unknown; did you mean 'heads'?"), typo.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("t.csv")))
    }

    func testIllegalCombinationsAreSkippedWithAReason() throws {
        let dir = try TempDir()
        let out = dir.path("i.csv")
        let r = try CLI.mpirun(4, ["sweep", "--out", out, "--calibration", calibration(dir), "--variants", "mlra4,gla2,mla",
                                   "--tp", "1,3", "--heads", "3", "--contexts", "64", "--kv-ranks", "64", "--head-dim", "16",
                                   "--rope-dim", "8", "--n-embd", "48", "--q-rank", "16", "--batch", "4", "--steps", "2", "--warmup", "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("skipped: mlra4 cannot run at TP degree 3: the degree must be 1, 2, 4, 8, …"), r.stderr)
        XCTAssertTrue(r.stderr.contains("skipped: gla2 splits n_head into 2 head groups: 3 is not divisible by 2"), r.stderr)
        XCTAssertTrue(r.stderr.contains("skipped: TP degree 3 does not divide the world size 4"), r.stderr)
        XCTAssertEqual(Set(rows(out).map { "\($0["variant"]!)/\($0["tp"]!)" }), ["mlra4/1", "mla/1"])
    }

    func testValidationFailureStopsTheSweepWithTheMismatch() throws {
        let dir = try TempDir()
        for scope in ["kernel", "layer"] {
            let out = dir.path("v-\(scope).csv")
            let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir), "--inject-validation-error",
                                       "--variants", "mlra4", "--tp", "2", "--scopes", scope, "--heads", "4", "--contexts", "64",
                                       "--kv-ranks", "64", "--head-dim", "16", "--rope-dim", "8", "--n-embd", "32", "--q-rank", "16",
                                       "--batch", "1", "--quiet"])
            assertCleanError(r, contains: "validation failed for mlra4 \(scope) tp=2")
            XCTAssertTrue(r.stderr.contains("element 0 is"), r.stderr)
            XCTAssertEqual(rows(out).count, 0, "nothing may be written for a configuration that failed validation")
        }
    }

    func testAppendingToAnotherSchemaIsRefused() throws {
        let dir = try TempDir()
        let out = dir.write("other.csv", "a,b,c\n1,2,3\n")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir)] + small)
        assertCleanError(r, contains: "has another schema")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "a,b,c\n1,2,3\n")
    }

    /// The README's main job: every variant at t = 1, 2, 4 within 10 minutes here (a
    /// budget guard against runaway growth, not a performance measurement). The budget
    /// was 3 minutes; on 2026-12-01 this shared VM streamed 8.8 GB/s instead of its
    /// usual 32–39 and the same sweep took 275 s with today's binary and 84f58f8's alike.
    func testQuickPresetCoversEveryVariantWithinItsBudget() throws {
        let dir = try TempDir()
        let out = dir.path("q.csv")
        let start = Date()
        let r = try CLI.mpirun(4, ["sweep", "--preset", "quick", "--out", out, "--quiet"], timeout: 600)
        XCTAssertFalse(r.timedOut, "the quick preset exceeded its 10-minute budget")
        XCTAssertEqual(r.status, 0, r.stderr)
        let all = rows(out)
        XCTAssertEqual(Set(all.map { $0["variant"]! }), Set(VariantName.allCases.map(\.rawValue)))
        XCTAssertEqual(Set(all.map { $0["tp"]! }), ["1", "2", "4"])
        XCTAssertEqual(Set(all.map { $0["scope"]! }), ["kernel", "layer", "model"])
        // A measured calibration (no --calibration file): its FMA width, and the kernel's ISA, in every scope.
        for row in all {
            XCTAssertTrue(["avx512", "avx2", "swift-simd"].contains(row["calib_fma_width"] ?? ""), row["calib_fma_width"] ?? "nil")
            XCTAssertEqual(row["kernel_isa"], KernelISA.detected.rawValue, "\(row["variant"]!) \(row["scope"]!)")
        }
        print("quick preset: \(all.count) rows in \(Int(Date().timeIntervalSince(start))) s")
    }
}

/// Direct children of a process (from /proc).
func childPIDs(of pid: Int32) throws -> [Int32] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { child in
        guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[1]) == pid
    }
}
