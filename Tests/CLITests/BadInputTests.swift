import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 7, bad input: every command refuses bad values and files with one clear
/// line and a non-zero exit, writes nothing half-way, and under mpirun every rank
/// exits. (Single-process cases are cheap; mpirun launches are kept few.)
final class BadInputTests: XCTestCase {
    let mlra4 = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8}"#
    let model = #"{"variant": "mlra4", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8, "n_layer": 2, "intermediate_size": 48, "vocab_size": 40}"#
    let smallSweep = ["--variants", "mla", "--contexts", "64", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                      "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--batch", "1", "--warmup", "0", "--steps", "2", "--quiet"]

    /// A safetensors file built byte by byte: header JSON, optional length override, data bytes.
    func raw(_ dir: TempDir, _ name: String, _ json: String, length: UInt64? = nil, data: Data = Data()) -> String {
        var d = Data()
        withUnsafeBytes(of: (length ?? UInt64(json.utf8.count)).littleEndian) { d.append(contentsOf: $0) }
        d.append(Data(json.utf8)); d.append(data)
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path(name), contents: d), "test file not written")
        return dir.path(name)
    }

    /// The malformed safetensors of the issue, each with the fragment its error must name.
    func malformed(_ dir: TempDir, tensor: String, shape: [Int]) -> [(String, String)] {
        let n = shape.reduce(1, *), bytes = 4 * n
        let good = #"{"\#(tensor)": {"dtype": "F32", "shape": \#(shape), "data_offsets": [0, \#(bytes)]}}"#
        let zeros = Data(count: bytes)
        var full = Data(); withUnsafeBytes(of: UInt64(good.utf8.count).littleEndian) { full.append(contentsOf: $0) }
        full.append(Data(good.utf8)); full.append(zeros)
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path("trunc-\(tensor)"), contents: full.prefix(full.count - 5)), "test file not written")
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path("empty-\(tensor)"), contents: Data()), "test file not written")
        return [
            (dir.path("missing-\(tensor)"), "no such file"),
            (dir.path("empty-\(tensor)"), "shorter than the 8-byte header length"),
            (dir.path("trunc-\(tensor)"), "lie outside"),
            (raw(dir, "len-\(tensor)", good, length: 1 << 40, data: zeros), "exceeds the limit"),
            (raw(dir, "past-\(tensor)", good, length: UInt64(good.utf8.count + bytes + 1), data: zeros), "runs past the end"),
            (raw(dir, "json-\(tensor)", #"{"\#(tensor)": {"dtype": "F32", "#, data: zeros), "header is not JSON"),
            (raw(dir, "off-\(tensor)", good, data: zeros.prefix(bytes / 2)), "lie outside"),
            (raw(dir, "dtype-\(tensor)", good.replacingOccurrences(of: "F32", with: "F64"), data: zeros), "dtype 'F64'"),
            (raw(dir, "overlap-\(tensor)", #"{"\#(tensor)": {"dtype": "F32", "shape": \#(shape), "data_offsets": [0, \#(bytes)]}, "z": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: zeros),
             "overlap"),
            (raw(dir, "shape-\(tensor)", good.replacingOccurrences(of: "\(shape)", with: "\(shape.dropLast() + [shape.last! + 1])"), data: zeros),
             "but data_offsets span \(bytes)"),
        ]
    }

    func testForwardRefusesBadValuesAndFiles() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", mlra4)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: randomInput(tokens: 3, width: 32, seed: 1))], to: input)
        let weights = dir.path("w.safetensors")
        XCTAssertEqual(try CLI.run(["weights", "--config", config, "--seed", "2", "--out", weights]).status, 0)
        let out = dir.path("y.safetensors")
        func forward(_ extra: [String], config c: String? = nil, input x: String? = nil) throws -> CLIResult {
            try CLI.run(["forward", "--config", c ?? config, "--input", x ?? input, "--prefill", "1", "--out", out] + extra, timeout: 60)
        }
        assertCleanError(try forward(["--seed", "1", "--kv-dtype", "f64"]), contains: "f64")
        assertCleanError(try forward(["--seed", "1", "--prefill=-1"]), contains: "-1")
        assertCleanError(try forward(["--seed", "1"], config: dir.write("neg.json", mlra4.replacingOccurrences(of: "\"n_embd\": 32", with: "\"n_embd\": -32"))),
                         contains: "n_embd must be positive, got -32")
        assertCleanError(try forward(["--seed", "1"], config: dir.write("huge.json", mlra4.replacingOccurrences(of: "\"n_head\": 4", with: "\"n_head\": 9223372036854775807"))),
                         contains: "n_head")
        assertCleanError(try forward(["--seed", "1"], config: dir.write("empty.json", "")), contains: "not valid JSON")
        assertCleanError(try forward(["--seed", "1"], config: dir.write("gqa.json", #"{"variant": "gqa", "n_embd": 32, "n_head": 4, "head_dim": 0, "group_size": 2}"#)),
                         contains: "head_dim must be positive")
        // Input of the wrong width.
        let narrow = dir.path("narrow.safetensors")
        try SafeTensorsFile.write(["x": Tensor(zeros: [3, 31])], to: narrow)
        assertCleanError(try forward(["--seed", "1"], input: narrow), contains: "31")
        // Every malformed safetensors, as --input and as --weights.
        for (path, fragment) in malformed(dir, tensor: "x", shape: [3, 32]) {
            assertCleanError(try forward(["--seed", "1"], input: path), contains: fragment)
        }
        for (path, fragment) in malformed(dir, tensor: "q_a_proj.weight", shape: [16, 32]) {
            assertCleanError(try forward(["--weights", path]), contains: fragment)
        }
        // Unwritable outputs: a parent that is a regular file, /proc, read-only /sys.
        for bad in [input + "/y.safetensors", "/proc/nope/y.safetensors", "/proc/y.safetensors", "/sys/y.safetensors"] {
            assertCleanError(try CLI.run(["forward", "--config", config, "--seed", "1", "--input", input, "--prefill", "1", "--out", bad]),
                             contains: bad)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output may be written on failure")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")
    }

    func testGenerateRefusesBadValuesAndFiles() throws {
        let dir = try TempDir()
        let config = dir.write("m.json", model)
        let out = dir.path("logits.safetensors")
        func generate(_ extra: [String], config c: String? = nil) throws -> CLIResult {
            try CLI.run(["generate", "--config", c ?? config, "--prompt", "1,2", "--logits-out", out] + extra, timeout: 60)
        }
        assertCleanError(try generate(["--seed", "1", "--tokens", "2"], config: dir.write("layer.json", mlra4)), contains: "needs 'n_layer'")
        assertCleanError(try generate(["--seed", "1", "--tokens", "2", "--kv-dtype", "int8"]), contains: "int8")
        assertCleanError(try generate(["--seed", "1", "--tokens=-2"]), contains: "-2")
        assertCleanError(try CLI.run(["generate", "--config", config, "--seed", "1", "--prompt", "1,99", "--tokens", "1"]), contains: "99")
        assertCleanError(try CLI.run(["generate", "--config", config, "--seed", "1", "--prompt", "1,x", "--tokens", "1"]), contains: "x")
        assertCleanError(try generate(["--seed", "1", "--tokens", "2"],
                                      config: dir.write("v0.json", model.replacingOccurrences(of: "\"vocab_size\": 40", with: "\"vocab_size\": 0"))),
                         contains: "vocab_size must be positive")
        assertCleanError(try generate(["--seed", "1", "--tokens", "2"],
                                      config: dir.write("nl.json", model.replacingOccurrences(of: "\"n_layer\": 2", with: "\"n_layer\": 100000000"))),
                         contains: "n_layer")
        for (path, fragment) in malformed(dir, tensor: "transformer.wte.weight", shape: [40, 32]) {
            assertCleanError(try generate(["--weights", path, "--tokens", "1"]), contains: fragment)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output may be written on failure")
    }

    func testPlanBenchCalibrateRefuseBadValues() throws {
        let dir = try TempDir()
        let cases: [([String], String)] = [
            (["plan", "--variants", "mlra9"], "unknown variant 'mlra9'"),
            (["plan", "--kv-dtype", "f64"], "f64"),
            (["plan", "--heads=-4"], "-4"),
            (["plan", "--context", "0"], "--context must be positive, got 0"),
            (["plan", "--heads", "0"], "0"),
            (["plan", "--format", "xml"], "xml"),
            (["bench", "--variant", "mlra9", "--context", "64", "--heads", "4"], "mlra9"),
            (["bench", "--variant", "mla", "--context", "0", "--heads", "4"], "--context must be at least 1, got 0"),
            (["bench", "--variant", "mla", "--context", "64", "--heads=-4"], "-4"),
            (["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--kv-dtype", "f64"], "f64"),
            (["bench", "--variant", "gqa", "--context", "64", "--heads", "6", "--kv-heads", "4"], "--heads 6 is not divisible by --kv-heads 4"),
            (["bench", "--variant", "mlra4", "--tp", "3", "--context", "64", "--heads", "4"], "mlra4 cannot run at TP degree 3"),
            (["bench", "--variant", "mla", "--tp", "3", "--context", "64", "--heads", "4"], "3"),
            (["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--kv-rank", "30", "--rope-dim", "7"], "7"),
            (["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--calibration", dir.path("nope.json")], "cannot read calibration file"),
            (["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--calibration", dir.write("bad.json", "{]")], "bad.json"),
            (["calibrate", "--threads", "0"], "--threads must be at least 1, got 0"),
            (["calibrate", "--threads=-1"], "-1"),
            (["calibrate", "--format", "xml"], "xml"),
        ]
        for (args, fragment) in cases {
            assertCleanError(try CLI.run(args, timeout: 60), contains: fragment)
        }
    }

    /// `plan --tp 0` must be refused, not trap (it traps in DecodeCost today).
    func testPlanRefusesTPZero() throws {
        assertCleanError(try CLI.run(["plan", "--tp", "0"], timeout: 60), contains: "0")
        assertCleanError(try CLI.run(["plan", "--tp=-2"], timeout: 60), contains: "-2")
    }

    /// A context whose cache cannot fit: bench must refuse before allocating, naming
    /// the bytes needed and available (it aborts in the allocator today).
    func testBenchRefusesACacheThatCannotFit() throws {
        let r = try CLI.run(["bench", "--variant", "mla", "--context", "100000000000", "--heads", "64"], timeout: 60)
        assertCleanError(r, contains: "GiB")
        XCTAssertTrue(r.stderr.contains("available"), r.stderr)
    }

    func testSweepRefusesBadValuesSpecsAndOutputs() throws {
        let dir = try TempDir()
        let out = dir.path("s.csv")
        let cal = try calibration(dir)
        func sweep(_ extra: [String], out o: String? = nil) throws -> CLIResult {
            try CLI.run(["sweep", "--out", o ?? out, "--calibration", cal] + smallSweep + extra, timeout: 60)
        }
        assertCleanError(try sweep(["--variants", "mla,mlra9"]), contains: "unknown variant 'mlra9'")
        assertCleanError(try sweep(["--scopes", "kernel,nope"]), contains: "unknown scope 'nope'")
        assertCleanError(try sweep(["--kv-dtypes", "f64"]), contains: "f64")
        assertCleanError(try sweep(["--contexts", "0"]), contains: "--contexts has 0")
        assertCleanError(try sweep(["--tp", "0"]), contains: "--tp has 0")
        assertCleanError(try sweep(["--heads=-4"]), contains: "-4")
        assertCleanError(try sweep(["--steps", "0"]), contains: "steps")
        assertCleanError(try sweep(["--contexts", "1,2,x"]), contains: "x")
        assertCleanError(try sweep(["--array-task", "3", "--array-count", "2"]), contains: "--array-task 3")
        assertCleanError(try sweep(["--tp", "9223372036854775807"]), contains: "largest supported value")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused sweep must not create its CSV")

        // Malformed spec files.
        let specs: [(String, String)] = [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            (#"{"grids": []}"#, "missing key 'defaults'"),
            (#"{"defaults": {}, "grids": []}"#, "no grids"),
            (#"{"defaults": {}, "grids": [{"variants": ["mlra9"]}]}"#, "grids"),
            (#"{"defaults": {}, "grids": [{"tp": "2"}]}"#, "wrong type"),
            (#"{"defaults": {"steps": -3}, "grids": [{}]}"#, "'steps' is -3"),
            (#"{"defaults": {}, "grids": [{"contexts": [1e30]}]}"#, "number beyond a 64-bit integer"),
            (#"{"defaults": {}, "grids": [{"dtypes": ["bf16\nx"]}]}"#, "unknown dtype"),
            (#"{"defaults": {}, "grids": [{"contexts": [1099511627776], "batch": [1048576], "heads": [1048576]}]}"#, "at most 2^56"),
        ]
        for (i, (text, fragment)) in specs.enumerated() {
            let spec = dir.write("spec\(i).json", text)
            assertCleanError(try CLI.run(["sweep", "--spec", spec, "--out", out, "--calibration", cal, "--quiet"], timeout: 60), contains: fragment)
        }
        assertCleanError(try CLI.run(["sweep", "--spec", dir.path("none.json"), "--out", out], timeout: 60), contains: "cannot read spec file")
        assertCleanError(try CLI.run(["sweep", "--preset", "nope", "--out", out], timeout: 60), contains: "nope")

        // Unwritable outputs: parent is a regular file, /proc, read-only /sys.
        for bad in [cal + "/s.csv", "/proc/nope/s.csv", "/proc/s.csv", "/sys/s.csv"] {
            assertCleanError(try sweep([], out: bad), contains: bad)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused sweep must not create its CSV")
        assertCleanError(try sweep(["--samples", "/proc/nope/samples.csv"]), contains: "/proc/nope/samples.csv")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "an unwritable --samples must be refused before the results CSV is created")

        // Resuming into a CSV of another schema (or a CSV with another header order): file unchanged.
        for (name, text) in [("other.csv", "a,b,c\n1,2,3\n"), ("reordered.csv", ResultsSchema.columns.reversed().joined(separator: ",") + "\n")] {
            let path = dir.write(name, text)
            assertCleanError(try sweep([], out: path), contains: "another schema")
            XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), text)
        }
    }

    /// Under mpirun: errors are agreed and printed once, every rank exits, nothing is written.
    func testUnderMpirunEveryRankExitsAndNothingIsWritten() throws {
        let dir = try TempDir()
        let config = dir.write("m.json", model)
        // generate at world size 3: mlra4 cannot run at TP degree 3.
        let g = try CLI.mpirun(3, ["generate", "--config", config, "--seed", "1", "--prompt", "1,2", "--tokens", "2",
                                   "--logits-out", dir.path("l.safetensors")], timeout: 60)
        assertCleanError(g, contains: "TP degree 3")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("l.safetensors")))

        // forward with a truncated checkpoint on 2 ranks.
        let layer = dir.write("c.json", mlra4)
        let input = dir.path("x.safetensors")
        try SafeTensorsFile.write(["x": Tensor(shape: [3, 32], data: randomInput(tokens: 3, width: 32, seed: 1))], to: input)
        let w = dir.path("w.safetensors")
        XCTAssertEqual(try CLI.run(["weights", "--config", layer, "--seed", "2", "--out", w]).status, 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: w))
        XCTAssertTrue(FileManager.default.createFile(atPath: w, contents: bytes.prefix(bytes.count - 100)), "test file not written")
        let f = try CLI.mpirun(2, ["forward", "--config", layer, "--weights", w, "--input", input, "--prefill", "1",
                                   "--out", dir.path("y.safetensors")], timeout: 60)
        assertCleanError(f, contains: "lie outside")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("y.safetensors")))

        // sweep into an unwritable path on 2 ranks, and into another schema.
        let s = try CLI.mpirun(2, ["sweep", "--out", "/proc/nope/s.csv", "--calibration", calibration(dir)] + smallSweep, timeout: 60)
        assertCleanError(s, contains: "/proc/nope/s.csv")
    }

    /// Sweep with a context whose cache cannot fit on this node: skipped with the
    /// bytes needed and available; the configurations that fit are still measured.
    func testSweepSkipsConfigurationsThatCannotFitInMemory() throws {
        let dir = try TempDir()
        let out = dir.path("m.csv")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir), "--variants", "mla", "--tp", "2",
                                   "--contexts", "64,1000000000000", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                                   "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--batch", "1", "--warmup", "0", "--steps", "2"],
                               timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("skipped: needs") && r.stderr.contains("GiB are available"), r.stderr)
        XCTAssertEqual(AppendOnlyCSV.readRows(path: out).map { $0["context"]! }, ["64"])
    }
}
