import Foundation
import MLRACore
import XCTest

/// One exit-status convention for every subcommand: a wrong command line (an unknown
/// or missing flag, a flag value that is malformed or out of range, flags that
/// conflict) exits 64 (EX_USAGE); every other failure (files, MPI, devices, memory,
/// validation) exits 1. Either way stderr is exactly one `mlra: error: …` line.
final class ExitStatusTests: XCTestCase {
    let layer = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#
    let model = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8, "n_layer": 2, "intermediate_size": 48, "vocab_size": 40}"#
    let smallSweep = ["--variants", "mla", "--contexts", "64", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                      "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--batch", "1", "--warmup", "0", "--steps", "2",
                      "--no-noise-probe", "--quiet"]

    /// Exactly one stderr line, `mlra: error: …`, and the expected status; a usage error
    /// points at the help of its subcommand.
    func assertStatus(_ r: CLIResult, _ status: Int32, _ args: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "\(args) hung", file: file, line: line)
        XCTAssertEqual(r.status, status, "\(args): \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertEqual(lines.count, 1, "\(args): expected one stderr line, got: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(lines.first?.hasPrefix("mlra: error: ") ?? false, "\(args): \(r.stderr)", file: file, line: line)
        if status == 64 {
            XCTAssertTrue(r.stderr.hasSuffix("(see 'mlra help \(args[0])')\n"), "\(args): \(r.stderr)", file: file, line: line)
        }
    }

    func testEveryCommandExits64OnABadCommandLine() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", layer), m = dir.write("m.json", model)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: randomInput(tokens: 3, width: 32, seed: 1))], to: input)
        let y = dir.path("y.safetensors"), csv = dir.path("s.csv")
        let spec = dir.write("spec.json", #"{"grids": [{"variants": ["mla"]}]}"#)
        let forward = ["forward", "--config", config, "--seed", "1", "--input", input, "--out", y]
        let generate = ["generate", "--config", m, "--seed", "1"]
        let bench = ["bench", "--variant", "mla", "--context", "64", "--heads", "4"]
        let sweep = ["sweep", "--out", csv] + smallSweep
        let cases: [[String]] = [
            sweep + ["--contexts", "abc"],                                         // the last --contexts counts
            sweep + ["--tp", "0"],
            sweep + ["--kv-dtypes", "f64"],
            sweep + ["--repeats", "0"],
            ["sweep", "--out", csv, "--preset", "quick", "--spec", spec],
            ["sweep", "--preset", "quick"],                                        // --out missing
            sweep + ["--spread-warn", "0.5"],
            forward + ["--prefill", "1", "--kv-dtype", "f64"],
            forward + ["--prefill=-1"],
            forward + ["--prefill", "4"],                                          // beyond T = 3
            ["forward", "--config", config, "--seed", "1", "--input", input, "--prefill", "1"],   // --out missing
            generate + ["--prompt", "1", "--tokens", "0"],
            generate + ["--prompt", "x", "--tokens", "2"],
            generate + ["--prompt", "99", "--tokens", "2"],                        // outside the vocabulary
            ["plan", "--tp", "0"],
            ["plan", "--variants", "mlra9"],
            ["plan", "--heads", "0"],
            ["plan", "--kv-dtype", "f64"],
            ["weights", "--config", config, "--dtype", "f64", "--out", dir.path("w.safetensors")],
            ["weights", "--config", config],                                       // --out missing
            ["calibrate", "--threads", "0"],
            bench + ["--tp", "0"],
            bench + ["--tp", "3"],                                                 // 4 heads do not split 3 ways
            ["bench", "--context", "64", "--heads", "4"],                          // --variant missing
            ["noise", "--noise-budget", "0"],
            ["noise", "--quantum-us", "1"],
            ["selftest", "--device", "cpu"],
            ["selftest", "--kv-dtypes", "f64"],
            ["kernels", "--no-such-flag"],
        ] + MLRASubcommands.all.map { [$0, "--no-such-flag"] }
        var covered = Set<String>()
        for args in cases {
            assertStatus(try CLI.run(args, timeout: 60), 64, args)
            covered.insert(args[0])
        }
        XCTAssertEqual(covered, Set(MLRASubcommands.all))
        XCTAssertFalse(FileManager.default.fileExists(atPath: csv), "a refused sweep creates no CSV")
        XCTAssertFalse(FileManager.default.fileExists(atPath: y), "a refused forward writes no y")
    }

    /// Files that cannot be read or written are failures of the run, not of the command line.
    func testARuntimeFailureExits1() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", layer)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: randomInput(tokens: 3, width: 32, seed: 1))], to: input)
        let missing = dir.path("none.json"), nowhere = dir.path("no-such-folder/file")
        let cases: [[String]] = [
            ["sweep", "--out", nowhere + ".csv", "--calibration", try calibration(dir)] + smallSweep,
            ["sweep", "--out", dir.path("s.csv"), "--calibration", missing] + smallSweep,
            ["forward", "--config", missing, "--seed", "1", "--input", input, "--prefill", "1", "--out", dir.path("y.safetensors")],
            ["forward", "--config", config, "--seed", "1", "--input", input, "--prefill", "1", "--out", nowhere],
            ["generate", "--config", missing, "--seed", "1", "--prompt", "1", "--tokens", "2"],
            ["weights", "--config", config, "--out", nowhere],
            ["weights", "--config", missing, "--out", dir.path("w.safetensors")],
            ["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--calibration", missing],
            ["noise", "--noise-budget", "0.2", "--out", nowhere],
        ]
        for args in cases { assertStatus(try CLI.run(args, timeout: 60), 1, args) }
    }

    /// Under mpirun a usage error found inside the job (the grid flags are read on every
    /// rank) ends every rank with 64, printed once.
    func testAUsageErrorUnderMpirunEndsEveryRankWith64() throws {
        let dir = try TempDir()
        let r = try CLI.mpirun(2, ["sweep", "--out", dir.path("s.csv")] + smallSweep + ["--contexts", "0"])
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("mlra: error") }.count, 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("s.csv")))
    }
}

/// The subcommands, as `mlra help` lists them.
enum MLRASubcommands {
    static let all = ["sweep", "forward", "generate", "plan", "weights", "calibrate", "bench", "noise", "selftest", "kernels"]
}
