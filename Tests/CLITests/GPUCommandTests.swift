import Foundation
import MLRABench
import XCTest

/// The GPU backend's bad input on a machine without a GPU (CI): one `mlra: error:` line
/// naming what is missing, every rank exits; NVRTC found from the venv, or a clear line
/// naming where it looked and how to point at it.
final class GPUCommandTests: XCTestCase {
    var hasGPU: Bool { FileManager.default.fileExists(atPath: "/dev/nvidia0") }

    /// NVRTC from the project's venv (scripts/setup.sh installs it; `make test` exports MLRA_NVRTC).
    var nvrtc: String? {
        if let p = ProcessInfo.processInfo.environment["MLRA_NVRTC"], !p.isEmpty { return p }
        let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".venv/lib")
        let pythons = (try? FileManager.default.contentsOfDirectory(atPath: venv.path)) ?? []
        return pythons.map { venv.appendingPathComponent("\($0)/site-packages/nvidia/cu13/lib").path }
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    func testDeviceCudaWithoutAGPUIsOneLine() throws {
        try XCTSkipIf(hasGPU, "this machine has a GPU")
        let shape = ["--variant", "mlra4", "--heads", "4", "--head-dim", "16", "--rope-dim", "16", "--kv-rank", "64", "--context", "64"]
        for args in [["bench", "--device", "cuda"] + shape, ["calibrate", "--device", "cuda"], ["selftest", "--device", "cuda"]] {
            assertCleanError(try CLI.run(args), contains: "--device cuda: no NVIDIA driver")
        }
        assertCleanError(try CLI.run(["bench", "--gpu-tile", "64"] + shape), contains: "need --device cuda")
        assertCleanError(try CLI.run(["bench", "--device", "cuda", "--gpu-tile", "40"] + shape), contains: "multiple of 16")
    }

    func testForwardOnCudaUnderMPIEveryRankExits() throws {
        try XCTSkipIf(hasGPU, "this machine has a GPU")
        let dir = try TempDir()
        let config = dir.write("c.json", #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 16}"#)
        // x [3, 32] F32 safetensors, built by the harness's own writer via `mlra weights`? A small file by hand:
        let n = 3 * 32
        let header = #"{"x": {"dtype": "F32", "shape": [3, 32], "data_offsets": [0, \#(4 * n)]}}"#
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(Data(header.utf8))
        for i in 0..<n { withUnsafeBytes(of: Float(i % 7) * 0.1) { data.append(contentsOf: $0) } }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path("x.safetensors"), contents: data))
        let r = try CLI.mpirun(2, ["forward", "--config", config, "--input", dir.path("x.safetensors"), "--prefill", "1",
                                   "--out", dir.path("y.safetensors"), "--device", "cuda"], timeout: 120)
        assertCleanError(r, contains: "no NVIDIA driver")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("y.safetensors")))
    }

    /// `generate --device cuda` (the decoder on each rank's GPU) without a GPU: one line,
    /// every rank exits with status 1, nothing written.
    func testGenerateOnCudaUnderMPIEveryRankExits() throws {
        try XCTSkipIf(hasGPU, "this machine has a GPU")
        let dir = try TempDir()
        let config = dir.write("m.json", #"{"variant": "gqa", "n_embd": 32, "n_head": 4, "head_dim": 8, "group_size": 2, "n_layer": 2, "intermediate_size": 24, "vocab_size": 41}"#)
        for n in [1, 2] {
            let r = try CLI.mpirun(n, ["generate", "--config", config, "--prompt", "3,1,4", "--tokens", "3", "--device", "cuda",
                                       "--logits-out", dir.path("l.safetensors")], timeout: 120)
            assertCleanError(r, contains: "--device cuda: no NVIDIA driver")
            XCTAssertEqual(r.status, 1, "n=\(n)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("l.safetensors")))
        }
        assertCleanError(try CLI.run(["generate", "--config", config, "--prompt", "1", "--tokens", "1", "--gpu-tile", "64"]),
                         contains: "need --device cuda")
    }

    /// Issue 11: `sweep --devices cuda` (or a spec's "devices") on a machine without a GPU:
    /// one line under mpirun, every rank exits, and no file is created or changed (not even
    /// the lock files): the GPUs are bound before any output is opened. An unknown device or
    /// a CPU calibration given as --gpu-calibration is one line too. cuda configurations that
    /// are all skipped need no GPU: the cpu rows are measured.
    func testSweepOnCudaWithoutAGPUIsOneLineOnEveryRankAndTouchesNothing() throws {
        try XCTSkipIf(hasGPU, "this machine has a GPU")
        let dir = try TempDir()
        let cal = try calibration(dir)
        let out = dir.path("s.csv"), samples = dir.path("samples.csv")
        let grid = ["--variants", "mlra4", "--contexts", "64", "--tp", "1", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                    "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--warmup", "0", "--steps", "2", "--calibration", cal]
        let files = { Set(try FileManager.default.contentsOfDirectory(atPath: dir.url.path)) }
        let before = try files()
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--samples", samples, "--devices", "cuda"] + grid, timeout: 120)
        assertCleanError(r, contains: "--devices cuda: no NVIDIA driver")
        XCTAssertEqual(try files(), before, "nothing may be created before the GPUs are bound")

        let spec = dir.write("spec.json", #"{"defaults": {"heads": [4], "head_dim": 16, "rope_dim": 8, "kv_ranks": [64], "contexts": [64], "q_lora_rank": 16, "steps": 2}, "grids": [{"variants": ["mla"], "devices": ["cpu", "cuda"]}]}"#)
        let existing = dir.write("old.csv", "a,b\n1,2\n")
        assertCleanError(try CLI.mpirun(2, ["sweep", "--spec", spec, "--out", existing, "--calibration", cal], timeout: 120),
                         contains: "--devices cuda: no NVIDIA driver")
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "a,b\n1,2\n")

        assertCleanError(try CLI.run(["sweep", "--out", out, "--devices", "cpu,gpu"] + grid, timeout: 60),
                         contains: "unknown device 'gpu'; expected cpu or cuda")
        assertCleanError(try CLI.run(["sweep", "--out", out, "--devices", "cuda", "--gpu-calibration", cal] + grid, timeout: 60),
                         contains: "re-run 'mlra calibrate --device cuda --format json'")
        XCTAssertEqual(try files(), before.union(["spec.json", "old.csv"]))

        // Model scope runs on cuda too (issue 12): it needs the GPU like the other scopes.
        assertCleanError(try CLI.mpirun(2, ["sweep", "--out", out, "--devices", "cpu,cuda", "--scopes", "model"] + grid, timeout: 120),
                         contains: "--devices cuda: no NVIDIA driver")
        XCTAssertEqual(try files(), before.union(["spec.json", "old.csv"]))
        let skipped = dir.write("skipped.json", #"{"defaults": {"heads": [4], "head_dim": 16, "rope_dim": 8, "kv_ranks": [64], "contexts": [64], "q_lora_rank": 16, "n_embd": 32, "warmup": 0, "steps": 2, "scopes": ["model"]}, "grids": [{"variants": ["mlra4"], "devices": ["cpu"], "tp": [1]}, {"variants": ["mlra4"], "devices": ["cuda"], "tp": [4]}]}"#)
        let ok = try CLI.mpirun(2, ["sweep", "--spec", skipped, "--out", out, "--calibration", cal], timeout: 120)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stderr.contains("cuda: skipped: TP degree 4 does not divide the world size 2"), ok.stderr)
        let rows = AppendOnlyCSV.readRows(path: out)
        XCTAssertEqual(rows.count, 1, "mlra4 model tp 1 batch 1 on the CPU: one replica, one row")
        for row in rows {
            XCTAssertEqual(row["device"], "cpu")
            XCTAssertTrue(row["calib_source"]?.hasPrefix("file:") ?? false, row["calib_source"] ?? "nil")
            for column in ResultsSchema.columns where column.hasPrefix("gpu_") { XCTAssertEqual(row[column], "", column) }
        }
    }

    func testKernelsCompileAndABadNVRTCPathIsOneLine() throws {
        let path = try XCTUnwrap(nvrtc, "NVRTC not in .venv: run scripts/setup.sh")
        let ok = try CLI.run(["kernels", "--arch", "sm_90a"], timeout: 600, environment: ["MLRA_NVRTC": path])
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        XCTAssertTrue(ok.stdout.contains(" passed, 0 failed"), ok.stdout)
        XCTAssertFalse(ok.stdout.contains("WARN"), ok.stdout)
        let bad = try CLI.run(["kernels"], environment: ["MLRA_NVRTC": "/nonexistent/nvrtc"])
        assertCleanError(bad, contains: "NVRTC not found (tried /nonexistent/nvrtc)")
        XCTAssertTrue(bad.stderr.contains("MLRA_NVRTC"), bad.stderr)
    }

    /// Issue 12: `--collective nccl` is checked before any GPU or file: on a grid without cuda
    /// configurations it is a usage error, and a missing NCCL is one line on every rank
    /// naming where it looked and how to point at it (a node with or without a GPU).
    func testCollectiveNCCLIsCheckedBeforeAnyGPUOrFile() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let out = dir.path("s.csv")
        let grid = ["--variants", "mlra4", "--contexts", "64", "--tp", "1", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                    "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--warmup", "0", "--steps", "2", "--calibration", cal,
                    "--no-noise-probe"]
        let files = { Set(try FileManager.default.contentsOfDirectory(atPath: dir.url.path)) }
        let before = try files()
        let cpu = try CLI.run(["sweep", "--out", out, "--collective", "nccl", "--scopes", "layer"] + grid, timeout: 60)
        assertCleanError(cpu, contains: "--collective nccl applies to cuda configurations (--devices cuda); this sweep has none")
        XCTAssertEqual(cpu.status, 64)
        assertCleanError(try CLI.run(["sweep", "--out", out, "--collective", "gloo"] + grid, timeout: 60), contains: "gloo")

        setenv("MLRA_NCCL", "/nonexistent/nccl", 1)
        defer { unsetenv("MLRA_NCCL") }
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--devices", "cuda", "--scopes", "layer", "--collective", "nccl"] + grid,
                               timeout: 120)
        assertCleanError(r, contains: "--collective nccl: NCCL not found (tried /nonexistent/nccl)")
        XCTAssertTrue(r.stderr.contains("MLRA_NCCL"), r.stderr)
        XCTAssertEqual(try files(), before, "nothing may be created before the libraries are found")
    }
}
