import Foundation
import MLRACore
import XCTest

final class ForwardCommandTests: XCTestCase {
    let mlra4 = #"{"variant": "mlra4", "n_embd": 32, "n_head": 3, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#

    func writeInput(_ dir: TempDir, tokens: Int, width: Int) throws -> (String, Tensor) {
        let x = Tensor(shape: [tokens, width], data: randomInput(tokens: tokens, width: width, seed: 9))
        let path = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": x], to: path)
        return (path, x)
    }

    /// The file contract: y equals the independent Double reference.
    func testForwardWritesYMatchingTheReference() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", mlra4)
        let (input, x) = try writeInput(dir, tokens: 6, width: 32)
        let r = try CLI.run(["forward", "--config", config, "--seed", "3", "--input", input, "--prefill", "2",
                             "--out", dir.path("y.safetensors")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let y = try SafeTensorsFile(path: dir.path("y.safetensors")).tensor("y", expectedShape: [6, 32])
        let layout = try AttentionConfig.load(path: config).layout()
        let ref = try ReferenceForward.run(layout, weights: SeededWeights(seed: 3), x: x.data.map(Double.init), tokens: 6)
        assertClose(y.data, ref, atol: 2e-5, rtol: 2e-4, "mlra forward")
    }

    func testWeightsFromSafetensorsInBF16() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", mlra4)
        let (input, _) = try writeInput(dir, tokens: 3, width: 32)
        let w = dir.path("w.safetensors")
        XCTAssertEqual(try CLI.run(["weights", "--config", config, "--seed", "4", "--dtype", "bf16", "--out", w]).status, 0)
        let r = try CLI.run(["forward", "--config", config, "--weights", w, "--input", input, "--prefill", "0",
                             "--out", dir.path("y.safetensors"), "--check"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("max |y - reference|"), r.stdout)
    }

    func testBadInputGivesOneLineAndNonZeroExit() throws {
        let dir = try TempDir()
        let good = dir.write("c.json", mlra4)
        let (input, _) = try writeInput(dir, tokens: 3, width: 32)
        let out = dir.path("y.safetensors")
        func forward(_ config: String, _ extra: [String] = [], input: String? = nil) throws -> CLIResult {
            try CLI.run(["forward", "--config", config, "--input", input ?? dir.path("x.safetensors"), "--prefill", "1", "--out", out] + extra)
        }
        assertCleanError(try forward(dir.write("v.json", mlra4.replacingOccurrences(of: "mlra4", with: "mlra8"))), contains: "unknown variant")
        assertCleanError(try forward(dir.write("d.json", mlra4.replacingOccurrences(of: "\"kv_lora_rank\": 32", with: "\"kv_lora_rank\": 30"))),
                         contains: "30 is not divisible by 4")
        assertCleanError(try forward(dir.write("z.json", mlra4.replacingOccurrences(of: "\"n_head\": 3", with: "\"n_head\": 0"))),
                         contains: "n_head must be positive")
        assertCleanError(try forward(dir.write("g.json", #"{"variant": "gla2", "n_embd": 32, "n_head": 3, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#)),
                         contains: "n_head into 2 head groups")
        assertCleanError(try forward(dir.write("q.json", #"{"variant": "gqa", "n_embd": 32, "n_head": 6, "head_dim": 8, "group_size": 4}"#)),
                         contains: "not divisible by 4")
        assertCleanError(try forward(dir.write("bad.json", "{oops")), contains: "not valid JSON")
        assertCleanError(try forward(dir.path("missing.json")), contains: "cannot read config file")
        assertCleanError(try forward(good, input: dir.write("junk.safetensors", "garbage!")), contains: "not a valid safetensors file")
        assertCleanError(try forward(good, ["--prefill", "9"]), contains: "--prefill 9 must lie in 0...3")
        // A checkpoint missing one tensor, and one with a wrong shape.
        let wrong = dir.path("wrong.safetensors")
        try SafeTensorsFile.write(["q_a_proj.weight": Tensor(zeros: [16, 31])], to: wrong)
        assertCleanError(try forward(good, ["--weights", wrong]), contains: "tensor 'q_a_proj.weight' has shape [16, 31], expected [16, 32]")
        let partial = dir.path("partial.safetensors")
        try SafeTensorsFile.write(["q_a_proj.weight": Tensor(zeros: [16, 32])], to: partial)
        assertCleanError(try forward(good, ["--weights", partial]), contains: "missing tensor 'q_a_layernorm.weight'")
        assertCleanError(try CLI.run(["forward", "--config", good, "--input", input, "--prefill", "1", "--out", "/nonexistent/y.safetensors"]),
                         contains: "does not exist")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output may be written on failure")
    }
}
