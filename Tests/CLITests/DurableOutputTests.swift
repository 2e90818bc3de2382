import Foundation
import MLRACore
import XCTest

/// Issue 17, outputs that are overwritten: the second run of `weights`, `forward
/// --out` or `generate --logits-out` onto an existing file must replace it, never
/// delete it (FileManager.replaceItemAt did), alone and under mpirun; a write that
/// fails leaves the old file exactly as it was and no temporary file behind.
final class DurableOutputTests: XCTestCase {
    let layer = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#
    let model = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8, "n_layer": 2, "intermediate_size": 48, "vocab_size": 40}"#

    func assertNoTemporaries(_ dir: TempDir, file: StaticString = #filePath, line: UInt = #line) throws {
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [], "temporary files left behind", file: file, line: line)
    }

    /// Runs `args` twice (the second time with `change`, so the content differs) and
    /// checks the file is there after each run and holds the second run's tensors.
    func overwriteTwice(_ dir: TempDir, output: String, tensor: String, run: ([String]) throws -> CLIResult,
                        first: [String], second: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let a = try run(first)
        XCTAssertEqual(a.status, 0, a.stderr, file: file, line: line)
        let before = try SafeTensorsFile(path: output).tensor(tensor).data
        let b = try run(second)
        XCTAssertEqual(b.status, 0, b.stderr, file: file, line: line)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output), "the overwritten output is gone", file: file, line: line)
        let after = try SafeTensorsFile(path: output).tensor(tensor).data
        XCTAssertNotEqual(before, after, "the second run's content must replace the first's", file: file, line: line)
        let mode = try FileManager.default.attributesOfItem(atPath: output)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o644, "outputs are ordinary readable files", file: file, line: line)
        try assertNoTemporaries(dir, file: file, line: line)
    }

    func testWeightsOverwrittenTwiceIsReplacedNotDeleted() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", layer)
        let w = dir.path("w.safetensors")
        try overwriteTwice(dir, output: w, tensor: "kv_b_proj", run: { try CLI.run(["weights", "--config", config, "--out", w] + $0) },
                           first: ["--seed", "1"], second: ["--seed", "2"])
    }

    func testForwardOutputOverwrittenIsReplacedAloneAndUnderMpirun() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", layer)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: randomInput(tokens: 3, width: 32, seed: 1))], to: input)
        let y = dir.path("y.safetensors")
        let args = ["forward", "--config", config, "--input", input, "--prefill", "1", "--out", y]
        try overwriteTwice(dir, output: y, tensor: "y", run: { try CLI.run(args + $0, timeout: 60) },
                           first: ["--seed", "1"], second: ["--seed", "2"])
        try overwriteTwice(dir, output: y, tensor: "y", run: { try CLI.mpirun(2, args + $0, timeout: 120) },
                           first: ["--seed", "3"], second: ["--seed", "4"])
    }

    func testGenerateLogitsOverwrittenIsReplacedAloneAndUnderMpirun() throws {
        let dir = try TempDir()
        let config = dir.write("m.json", model)
        let out = dir.path("logits.safetensors")
        let args = ["generate", "--config", config, "--prompt", "1,2", "--tokens", "2", "--logits-out", out]
        try overwriteTwice(dir, output: out, tensor: "logits", run: { try CLI.run(args + $0, timeout: 60) },
                           first: ["--seed", "1"], second: ["--seed", "2"])
        try overwriteTwice(dir, output: out, tensor: "logits", run: { try CLI.mpirun(2, args + $0, timeout: 120) },
                           first: ["--seed", "3"], second: ["--seed", "4"])
    }

    /// A write that cannot finish (the file system is full) leaves the old output
    /// byte for byte, removes its temporary file and says why in words.
    func testFailedOverwriteOnAFullFileSystemKeepsTheOldFile() throws {
        let fs = try SmallFileSystem(bytes: 64 << 10)
        let dir = try TempDir()
        let config = dir.write("c.json", layer)
        let big = dir.write("big.json", #"{"variant": "mlra4", "n_embd": 256, "n_head": 4, "q_lora_rank": 64, "kv_lora_rank": 128, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16}"#)
        let w = fs.path("w.safetensors")
        XCTAssertEqual(try CLI.run(["weights", "--config", config, "--seed", "1", "--out", w]).status, 0)
        let old = try Data(contentsOf: URL(fileURLWithPath: w))
        assertCleanError(try CLI.run(["weights", "--config", big, "--seed", "1", "--out", w]), contains: "no space left on device")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: w)), old, "the old output must be kept byte for byte")
        let left = try FileManager.default.contentsOfDirectory(atPath: fs.root).filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [], "temporary files left behind")
    }
}

/// A small tmpfs mounted for one test (root only; the test is skipped, saying why,
/// where mounting is impossible), so "the disk is full" is real, not simulated.
final class SmallFileSystem {
    let root: String
    init(bytes: Int) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-fs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        guard getuid() == 0 else {
            try? FileManager.default.removeItem(atPath: root)
            throw XCTSkip("mounting a small tmpfs needs root; this test of a full file system is skipped")
        }
        let r = try CLI.run(["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", root], executable: "/bin/mount", timeout: 20)
        guard r.status == 0 else {
            try? FileManager.default.removeItem(atPath: root)
            throw XCTSkip("cannot mount a tmpfs here (\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))); test skipped")
        }
    }
    deinit {
        _ = try? CLI.run([root], executable: "/bin/umount", timeout: 20)
        try? FileManager.default.removeItem(atPath: root)
    }
    func path(_ name: String) -> String { root + "/" + name }
}
