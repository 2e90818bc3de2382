import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 7, faults: signals to mpirun (SIGTERM as Slurm sends at the time limit,
/// SIGINT as ^C) and a rank dying of SIGSEGV mid-sweep end the job within a bound,
/// leave only whole rows, and a rerun resumes to the full set with every
/// configuration once. (SIGKILL of a rank is SweepCommandTests'.) NaN/Inf in
/// forward's weights or input is refused naming the tensor, with no output.
final class FaultTests: XCTestCase {
    /// 3 variants × 2 TP × 2 contexts in kernel scope at world size 2: 12 configurations, 18 rows,
    /// about 10 s in all here: each configuration must outlast mpirun's forwarding of a
    /// signal (~2 s), or the sweep ends before the fault can matter.
    let grid = ["--variants", "mla,mlra4,gqa", "--contexts", "8192,16384", "--tp", "1,2", "--heads", "4", "--kv-ranks", "64",
                "--head-dim", "16", "--rope-dim", "8", "--kv-heads", "2", "--n-embd", "64", "--q-rank", "32", "--scopes", "kernel",
                "--batch", "2", "--kv-dtypes", "bf16", "--warmup", "1", "--steps", "2000", "--threads", "1"]
    let expectedRows = 3 * 2 * (2 + 1)

    func key(_ r: [String: String]) -> String { (SweepConfig.keyColumns + ["tp_group"]).map { r[$0] ?? "" }.joined(separator: "|") }

    /// Starts the sweep under mpirun, waits for `rows` finished rows, applies `fault`,
    /// and checks the job ends within 30 s with only whole rows; then reruns it and
    /// checks the full set, each configuration once, earlier rows unchanged.
    func faultThenResume(_ name: String, rows wanted: Int = 3, environment: [String: String] = [:],
                         fault: (Process) throws -> Void) throws -> (status: Int32, stderr: String) {
        let dir = try TempDir()
        let out = dir.path("\(name).csv")
        let errPath = dir.path("\(name).err")
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let args = ["-n", "2", "--oversubscribe", "--bind-to", "none"] + environment.keys.sorted().flatMap { ["-x", $0] } + [CLI.mlra, "sweep", "--out", out,
                    "--calibration", try calibration(dir)] + grid
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
            .merging(environment) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while AppendOnlyCSV.readRows(path: out).count < wanted && Date() < deadline && p.isRunning { usleep(20_000) }
        XCTAssertTrue(p.isRunning, "the sweep finished before the fault could be injected")
        let t0 = Date()
        try fault(p)
        while p.isRunning && Date().timeIntervalSince(t0) < 30 { usleep(20_000) }
        XCTAssertFalse(p.isRunning, "\(name): the job did not end within 30 s")
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        let seconds = Date().timeIntervalSince(t0)
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        print("\(name): mpirun exited \(p.terminationStatus) (reason \(p.terminationReason == .exit ? "exit" : "signal")) \(String(format: "%.1f", seconds)) s after the fault")
        print("\(name): stderr: \(stderr.split(separator: "\n").filter { !$0.isEmpty }.suffix(6).joined(separator: " ⏎ "))")
        // No stray ranks left behind.
        XCTAssertEqual(try childPIDs(of: p.processIdentifier), [], "ranks outlived mpirun")

        let text = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"), "\(name): partial row")
        let before = AppendOnlyCSV.readRows(path: out)
        XCTAssertGreaterThanOrEqual(before.count, wanted)
        XCTAssertLessThan(before.count, expectedRows)
        let header = text.prefix { $0 != "\n" }.split(separator: ",", omittingEmptySubsequences: false).count
        for line in text.split(separator: "\n").dropFirst() {
            XCTAssertEqual(line.split(separator: ",", omittingEmptySubsequences: false).count, header, "\(name): torn row \(line.prefix(60))")
        }
        for r in before { XCTAssertEqual(r["validation"], "pass"); XCTAssertNotNil(Double(r["step_us_median"] ?? "")) }

        let again = try CLI.run(args, executable: "/usr/bin/mpirun", timeout: 300, environment: environment)
        XCTAssertEqual(again.status, 0, again.stderr)
        let after = AppendOnlyCSV.readRows(path: out)
        XCTAssertEqual(after.count, expectedRows)
        XCTAssertEqual(Set(after.map(key)).count, after.count, "\(name): a configuration appears twice")
        XCTAssertEqual(Array(after.prefix(before.count)).map(key), before.map(key), "\(name): finished rows must be kept")
        return (p.terminationStatus, stderr)
    }

    /// Open MPI 4.1.4's mpirun forwards SIGTERM and SIGINT to every rank; the ranks'
    /// handlers set the stop flag, the configuration in progress is finished, the
    /// ranks exit 130 and mpirun exits non-zero (1). (The resume hint rank 0 prints
    /// usually reaches mpirun's stderr, but mpirun may already have stopped forwarding
    /// output, so it is not asserted here.)
    func testSIGTERMToMpirunEndsTheSweepAndResumes() throws {
        let (status, _) = try faultThenResume("sigterm") { kill($0.processIdentifier, SIGTERM) }
        XCTAssertNotEqual(status, 0)
    }

    func testSIGINTToMpirunEndsTheSweepAndResumes() throws {
        let (status, _) = try faultThenResume("sigint") { kill($0.processIdentifier, SIGINT) }
        XCTAssertNotEqual(status, 0)
    }

    /// The ranks themselves get SIGTERM (what Slurm's scancel/time limit does with
    /// srun): the sweep sees its stop flag, finishes the configuration in progress,
    /// and exits 130 with the resume hint.
    func testSIGTERMToEveryRankStopsBetweenConfigurations() throws {
        let (status, stderr) = try faultThenResume("rank-sigterm") { p in
            for child in try childPIDs(of: p.processIdentifier) { kill(child, SIGTERM) }
        }
        XCTAssertEqual(status, 130, stderr)
        XCTAssertTrue(stderr.contains("interrupted") && stderr.contains("resume"), stderr)
    }

    /// A rank that dies of SIGSEGV: mpirun ends the job (status 139) within seconds.
    /// The Swift runtime's backtracer is switched off here: with it on (the default),
    /// a SIGSEGV or SIGABRT sent with kill(2) prints a backtrace and the rank carries
    /// on, so it would not model a crash.
    func testRankDyingOfSIGSEGVEndsTheJob() throws {
        let (status, _) = try faultThenResume("rank-segv", environment: ["SWIFT_BACKTRACE": "enable=no"]) { p in
            let ranks = try childPIDs(of: p.processIdentifier)
            XCTAssertFalse(ranks.isEmpty)
            kill(ranks.last!, SIGSEGV)
        }
        XCTAssertNotEqual(status, 0)
    }

    /// NaN/Inf in --weights or --input: refused naming the tensor, nothing written,
    /// also under mpirun (where every rank exits).
    func testNonFiniteWeightsAndInputAreRefused() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#)
        var xs = randomInput(tokens: 3, width: 32, seed: 1)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: xs)], to: input)
        xs[40] = .nan
        let nanInput = dir.path("xnan.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: xs)], to: nanInput)
        xs[40] = 1; xs[95] = -.infinity
        let infInput = dir.path("xinf.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: xs)], to: infInput, dtype: .bf16)

        let w = dir.path("w.safetensors")
        XCTAssertEqual(try CLI.run(["weights", "--config", config, "--seed", "2", "--out", w]).status, 0)
        let file = try SafeTensorsFile(path: w)
        var tensors = [String: Tensor]()
        for name in file.entries.keys { tensors[name] = try file.tensor(name) }
        var bad = tensors["kv_b_proj"]!
        bad = Tensor(shape: bad.shape, data: bad.data.enumerated().map { $0.offset == 7 ? .nan : $0.element })
        tensors["kv_b_proj"] = bad
        let nanWeights = dir.path("wnan.safetensors")
        try SafeTensorsFile.write(tensors, to: nanWeights, dtype: .f16)
        tensors["kv_b_proj"] = file.entries["kv_b_proj"].map { _ in try! file.tensor("kv_b_proj") }
        let c = tensors["c_proj.weight"]!
        tensors["c_proj.weight"] = Tensor(shape: c.shape, data: c.data.enumerated().map { $0.offset == 3 ? .infinity : $0.element })
        let infWeights = dir.path("winf.safetensors")
        try SafeTensorsFile.write(tensors, to: infWeights)

        let out = dir.path("y.safetensors")
        func forward(_ extra: [String], input x: String = input) throws -> CLIResult {
            try CLI.run(["forward", "--config", config, "--input", x, "--prefill", "1", "--out", out] + extra, timeout: 60)
        }
        assertCleanError(try forward(["--seed", "1"], input: nanInput), contains: "tensor 'x' contains nan at element 40")
        assertCleanError(try forward(["--seed", "1"], input: infInput), contains: "tensor 'x' contains -inf at element 95")
        assertCleanError(try forward(["--weights", nanWeights]), contains: "kv_b_proj")
        assertCleanError(try forward(["--weights", infWeights]), contains: "c_proj.weight")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output may be written")
        // Under mpirun: every rank holds its shard of kv_b_proj; the job ends with one line.
        let r = try CLI.mpirun(2, ["forward", "--config", config, "--weights", nanWeights, "--input", input, "--prefill", "1", "--out", out],
                               timeout: 60)
        XCTAssertFalse(r.timedOut, "hung")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("kv_b_proj") && r.stderr.contains("nan"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output may be written")
    }
}
