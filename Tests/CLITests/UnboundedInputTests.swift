import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 17, crashes and unbounded work: sizes that overflow an Int, thread counts
/// beyond the node, grids that explode, inputs too large to load and misleading
/// messages each end in exactly one `mlra: error:` line, at once, never a trap
/// (exit 132 with a backtrace), an exhausted machine or a hang.
final class UnboundedInputTests: XCTestCase {
    let mlra4 = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#
    let model = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8, "n_layer": 2, "intermediate_size": 48, "vocab_size": 40}"#
    let smallSweep = ["--variants", "mla", "--contexts", "64", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                      "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--batch", "1", "--warmup", "0", "--steps", "2", "--quiet"]

    /// Each of these trapped with an Int overflow (exit 132) before.
    func testSizeProductsThatOverflowGiveOneLineNamingTheValue() throws {
        let dir = try TempDir()
        assertCleanError(try CLI.run(["plan", "--context", "100000000000000"], timeout: 60), contains: "context 100000000000000")
        assertCleanError(try CLI.run(["plan", "--heads", "4611686018427387904"], timeout: 60), contains: "4611686018427387904 × 128")
        assertCleanError(try CLI.run(["bench", "--variant", "gqa", "--context", "64", "--heads", "4", "--kv-heads", "4",
                                      "--head-dim", "4611686018427387904"], timeout: 60), contains: "4 × 4611686018427387904")
        assertCleanError(try CLI.run(["plan", "--kv-rank", "4611686018427387904"], timeout: 60), contains: "'kv_lora_rank' is 4611686018427387904")
        // bench's loop counts and tile sizes: a hang, an exhausted allocator, an overflow in the scratch size.
        for flag in ["--steps", "--warmup", "--tile", "--simd-tile"] {
            let r = try CLI.run(["bench", "--variant", "mla", "--context", "64", "--heads", "4", flag, "4611686018427387904"], timeout: 60)
            assertCleanError(r, contains: "\(flag) 4611686018427387904 is beyond the largest supported value")
            XCTAssertEqual(r.status, 64, "a usage error")
        }
        // A TP degree of 2^62 built a plan per rank (a hang); it is now a row refused by name.
        let tp = try CLI.run(["plan", "--variants", "mla", "--tp", "4611686018427387904"], timeout: 60)
        XCTAssertEqual(tp.status, 0, tp.stderr)
        XCTAssertTrue(tp.stdout.contains("TP degree 4611686018427387904 is beyond the largest supported, 4096"), tp.stdout)
        // 2^40 tokens of a 4096-layer model: the cache's byte count alone exceeds an Int.
        let deep = dir.write("deep.json", #"{"variant": "mla", "n_embd": 64, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 512, "qk_nope_head_dim": 16, "qk_rope_head_dim": 64, "n_layer": 4096, "intermediate_size": 48, "vocab_size": 40}"#)
        let tokens = "\(1 << 40)"
        assertCleanError(try CLI.run(["generate", "--config", deep, "--seed", "1", "--prompt", "1", "--tokens", tokens], timeout: 60),
                         contains: "the memory of generating \(tokens) tokens is too large")
        // A smaller model: no overflow, but a cache that cannot fit, named by its token count.
        assertCleanError(try CLI.run(["generate", "--config", dir.write("m.json", model), "--seed", "1", "--prompt", "1", "--tokens", tokens],
                                     timeout: 60),
                         contains: "generating \(tokens) tokens needs")
        // A calibration file stating an absurd LLC (its cold-cache sets are 4 × llcBytes).
        var c = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: calibration(dir)))) as! [String: Any]
        c["llc_bytes"] = Int.max
        let huge = dir.path("huge.json")
        try JSONSerialization.data(withJSONObject: c).write(to: URL(fileURLWithPath: huge))
        assertCleanError(try CLI.run(["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--calibration", huge], timeout: 60),
                         contains: "calibration 'llc_bytes' is \(Int.max)")
        assertCleanError(try CLI.run(["sweep", "--out", dir.path("s.csv"), "--calibration", huge] + smallSweep, timeout: 60),
                         contains: "calibration 'llc_bytes' is \(Int.max)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("s.csv")))
        c["llc_bytes"] = 1 << 20
        c["read_gbs"] = -3
        try JSONSerialization.data(withJSONObject: c).write(to: URL(fileURLWithPath: huge))
        assertCleanError(try CLI.run(["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--calibration", huge], timeout: 60),
                         contains: "calibration 'read_gbs' is -3.0")
    }

    /// `--threads 100000` started threads until the machine ran out of process IDs.
    /// Every command now refuses more threads than the node has cores, as a usage error.
    func testThreadsAreBoundedByTheCores() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", mlra4), m = dir.write("m.json", model)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: randomInput(tokens: 3, width: 32, seed: 1))], to: input)
        let cores = WorkerPool.coresOnline
        let commands: [[String]] = [
            ["bench", "--variant", "mla", "--context", "64", "--heads", "4"],
            ["forward", "--config", config, "--seed", "1", "--input", input, "--prefill", "1", "--out", dir.path("y.safetensors")],
            ["generate", "--config", m, "--seed", "1", "--prompt", "1", "--tokens", "2"],
            ["calibrate", "--quick"],
        ]
        for args in commands {
            let r = try CLI.run(args + ["--threads", "100000"], timeout: 60)
            assertCleanError(r, contains: "--threads 100000 is more than the \(cores) cores of this node")
            XCTAssertEqual(r.status, 64, "a usage error")
        }
        assertCleanError(try CLI.run(["sweep", "--out", dir.path("s.csv"), "--calibration", calibration(dir)] + smallSweep
                                     + ["--threads", "1,100000"], timeout: 60),
                         contains: "--threads 100000 is more than the \(cores) cores of this node")
    }

    /// A thread the system refuses (here: each thread's stack, sized by `ulimit -s`,
    /// cannot be mapped under `ulimit -v`) ended in a precondition (SIGILL) with no
    /// error line; now it is one line naming pthread_create's reason.
    func testAThreadTheSystemRefusesIsOneLine() throws {
        guard WorkerPool.coresOnline >= 2 else { throw XCTSkip("needs --threads 2, so at least 2 cores") }
        // A thread's stack as large as the whole address space allowed can never be mapped.
        let script = "ulimit -v 1500000 && ulimit -s 1500000 && exec \"$0\" \"$@\""
        let dir = try TempDir()
        let r = try CLI.run(["-c", script, CLI.mlra, "bench", "--variant", "mla", "--context", "64", "--heads", "4", "--threads", "2",
                             "--calibration", calibration(dir)],
                            executable: "/bin/sh", timeout: 60, environment: ["OPENBLAS_NUM_THREADS": "1"])
        assertCleanError(r, contains: "cannot start kernel thread 2 of 2: pthread_create failed")
    }

    /// 100 grids of 63,000 configurations took 27 s and 2.8 GB before the first ran;
    /// the total is capped before anything is expanded.
    func testGridsThatExplodeAreRefusedAtOnce() throws {
        let dir = try TempDir()
        let grid = #"{"variants": ["mla", "gqa", "mha"], "contexts": [\#((1...100).map(String.init).joined(separator: ","))], "batch": [\#((1...210).map(String.init).joined(separator: ","))]}"#
        let spec = dir.write("big.json", #"{"defaults": {}, "grids": [\#(Array(repeating: grid, count: 100).joined(separator: ","))]}"#)
        let start = Date()
        assertCleanError(try CLI.run(["sweep", "--spec", spec, "--out", dir.path("s.csv"), "--calibration", calibration(dir)], timeout: 60),
                         contains: "the spec's 100 grids expand to 6300000 configurations; at most 100000 are supported in total")
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }

    /// A 6 GB `x` was refused only after loading it (36 s, 11.7 GB resident), a 42 GB
    /// one aborted in the allocator. The header's shape predicts the memory: refused
    /// before any data is read (the file here is sparse, so it costs no disk).
    func testForwardRefusesAHugeInputFromItsHeader() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", mlra4)
        let tokens = Int(ProcessInfo.processInfo.physicalMemory) / 64   // x alone: 2 × physical memory in f32
        let json = #"{"x":{"dtype":"F32","shape":[\#(tokens),32],"data_offsets":[0,\#(tokens * 128)]}}"#
        var header = Data()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { header.append(contentsOf: $0) }
        header.append(Data(json.utf8))
        let input = dir.path("x.safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: input, contents: header))
        XCTAssertEqual(truncate(input, off_t(header.count + tokens * 128)), 0, "sparse input not made")
        let start = Date()
        let r = try CLI.run(["forward", "--config", config, "--seed", "1", "--input", input, "--prefill", "1",
                             "--out", dir.path("y.safetensors")], timeout: 60)
        assertCleanError(r, contains: "this forward run over \(tokens) tokens needs")
        XCTAssertTrue(r.stderr.contains("GiB are available"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "refused from the header, before reading the data")
    }

    /// `weights` for a config near the 2^40-parameter limit generated tensors until the
    /// machine ran out of memory; it is refused from the parameter count first.
    func testWeightsRefusesAModelThatCannotFit() throws {
        let dir = try TempDir()
        let config = dir.write("w.json", #"{"variant": "mla", "n_embd": 1048576, "n_head": 64, "q_lora_rank": 16384, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64}"#)
        let start = Date()
        let r = try CLI.run(["weights", "--config", config, "--seed", "1", "--out", dir.path("w.safetensors")], timeout: 60)
        assertCleanError(r, contains: "weights needs")
        XCTAssertTrue(r.stderr.contains("GiB are available"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("w.safetensors")))
    }

    /// `--context -5` said "Missing value for '--context'" (ArgumentParser reads -5 as a
    /// flag); the value now reaches the command's own check, which names the problem.
    func testNegativeIntegerFlagsSayWhatIsWrong() throws {
        let cases: [([String], String)] = [
            (["plan", "--context", "-5"], "--context must be positive, got -5"),
            (["bench", "--variant", "mla", "--context", "-5", "--heads", "4"], "--context must be at least 1, got -5"),
            (["calibrate", "--threads", "-2"], "--threads must be at least 1, got -2"),
            (["sweep", "--out", "/tmp/never.csv", "--contexts", "-5,64"], "--contexts has -5; values must be at least 1"),
        ]
        for (args, fragment) in cases {
            let r = try CLI.run(args, timeout: 60)
            assertCleanError(r, contains: fragment)
            XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
        }
    }

    /// `--variants ""` (or a spec's `"variants": []`) ran nothing and exited 0.
    func testEmptyListsAreRefusedNamingTheKey() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        for flag in ["--variants", "--contexts", "--tp", "--kv-dtypes", "--scopes", "--threads"] {
            assertCleanError(try CLI.run(["sweep", "--out", dir.path("s.csv"), "--calibration", cal] + smallSweep + [flag, ""], timeout: 60),
                             contains: "\(flag) needs at least one value")
        }
        let spec = dir.write("empty.json", #"{"defaults": {}, "grids": [{"variants": []}]}"#)
        assertCleanError(try CLI.run(["sweep", "--spec", spec, "--out", dir.path("s.csv"), "--calibration", cal], timeout: 60),
                         contains: "grid 0: 'variants' is empty")
        let unknown = dir.write("unknown.json", #"{"defaults": {"context": [64]}, "grids": [{"variants": ["mla"]}]}"#)
        assertCleanError(try CLI.run(["sweep", "--spec", unknown, "--out", dir.path("s.csv"), "--calibration", cal], timeout: 60),
                         contains: "spec key 'defaults.context' is unknown")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("s.csv")))
    }

    /// Under mpirun every rank refuses an oversized --threads and an exploding grid, and exits.
    func testUnderMpirunEveryRankExits() throws {
        let dir = try TempDir()
        let m = dir.write("m.json", model)
        assertCleanError(try CLI.mpirun(2, ["generate", "--config", m, "--seed", "1", "--prompt", "1", "--tokens", "2",
                                            "--threads", "100000"], timeout: 60),
                         contains: "--threads 100000 is more than")
        assertCleanError(try CLI.mpirun(2, ["generate", "--config", m, "--seed", "1", "--prompt", "1", "--tokens", "\(1 << 40)"], timeout: 60),
                         contains: "generating \(1 << 40) tokens")
    }
}
