import Foundation
import MLRACore
import XCTest

/// Issue 17, lenient parsing and unchecked sizes in MLRACore: a safetensors header
/// naming a tensor twice or holding `true` in a shape, zero-length tensors reported
/// as overlapping, configs whose messages misled, size products that trapped.
final class StrictInputTests: XCTestCase {
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "accepted" } catch let e as HarnessError { return e.message } catch { return "not a HarnessError: \(error)" }
    }

    func file(_ json: String, data: Int) -> Data {
        var d = Data()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        return d + Data(json.utf8) + Data(repeating: 0, count: data)
    }

    func testCheckedSizesNameTheValueInsteadOfTrapping() throws {
        XCTAssertEqual(try CheckedSize.product([3, 4, 5], "x"), 60)
        XCTAssertEqual(try CheckedSize.sum([3, 4, 5], "x"), 12)
        XCTAssertEqual(message { _ = try CheckedSize.product([1 << 40, 1 << 30], "the cache at context 1073741824") },
                       "the cache at context 1073741824 is too large: 1099511627776 × 1073741824 exceeds the largest 64-bit integer (2^63 − 1)")
        XCTAssertEqual(message { _ = try CheckedSize.sum([Int.max, 1], "the total") },
                       "the total is too large: 9223372036854775807 + 1 exceeds the largest 64-bit integer (2^63 − 1)")
        // The plan's per-step figures at a context from the command line.
        let cost = try DecodeCost(AttentionConfig(variant: .mla, nEmbd: 64, nHead: 4, qLoraRank: 16, kvLoraRank: 512,
                                                  qkNopeHeadDim: 16, qkRopeHeadDim: 64).layout(), tp: 1, dtype: .f32)
        XCTAssertTrue(message { _ = try cost.kernelBytes(context: 100_000_000_000_000_000) }.contains("context 100000000000000000 is too large"))
    }

    /// JSONSerialization kept the last of two entries named alike: one tensor vanished.
    func testADuplicateTensorNameIsRefused() throws {
        let twice = #"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#
        XCTAssertEqual(message { _ = try SafeTensorsFile(bytes: self.file(twice, data: 8), path: "d") },
                       "d: not a valid safetensors file: tensor name 'x' appears twice in the header")
        let key = #"{"x": {"dtype": "F32", "shape": [2], "shape": [1], "data_offsets": [0, 4]}}"#
        XCTAssertEqual(message { _ = try SafeTensorsFile(bytes: self.file(key, data: 4), path: "d") },
                       "d: not a valid safetensors file: entry 'x' has key 'shape' twice")
    }

    /// NSNumber bridging read `true` as 1; a shape or offset must be written as an integer.
    func testShapesAndOffsetsMustBeIntegers() throws {
        for shape in ["[true, 1]", "[1.0, 1]", "[1e0, 1]", "[\"1\", 1]", "[null, 1]"] {
            let json = #"{"x": {"dtype": "F32", "shape": \#(shape), "data_offsets": [0, 4]}}"#
            XCTAssertTrue(message { _ = try SafeTensorsFile(bytes: self.file(json, data: 4), path: "s") }.contains("entry 'x' has a malformed shape"), shape)
        }
        let offsets = #"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [false, 4]}}"#
        XCTAssertTrue(message { _ = try SafeTensorsFile(bytes: self.file(offsets, data: 4), path: "s") }.contains("malformed data_offsets"))
        XCTAssertEqual(message { _ = try SafeTensorsFile(bytes: self.file(#"{"x": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}}"#, data: 4)) },
                       "accepted")
    }

    /// A zero-length tensor occupies no bytes: it overlaps nothing, whatever the names
    /// (and so the order a dictionary gives them) and wherever it sits.
    func testZeroLengthTensorsNeverOverlap() throws {
        for (a, b) in [("a", "z"), ("z", "a")] {
            for empty in [0, 4, 8] {
                let json = #"{"\#(a)": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "\#(b)": {"dtype": "F32", "shape": [0], "data_offsets": [\#(empty), \#(empty)]}}"#
                XCTAssertEqual(message { _ = try SafeTensorsFile(bytes: self.file(json, data: 8)) }, "accepted", json)
            }
            let two = #"{"\#(a)": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]}, "\#(b)": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}, "m": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#
            XCTAssertEqual(message { _ = try SafeTensorsFile(bytes: self.file(two, data: 8)) }, "accepted", two)
        }
        // Real overlaps are still found, and the pair named does not depend on the order.
        for (a, b) in [("a", "z"), ("z", "a")] {
            let json = #"{"\#(a)": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "\#(b)": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#
            XCTAssertEqual(message { _ = try SafeTensorsFile(bytes: self.file(json, data: 8), path: "o") },
                           "o: not a valid safetensors file: tensors '\(b)' and '\(a)' overlap in the data section")
        }
    }

    func testStrictJSONReadsWhatItShouldAndRefusesTheRest() throws {
        let v = try StrictJSON.parse(Data(#" {"a": [1, -2, 3.5e1, true, null, "\u00e9\ud83d\ude00\n"], "b": {}} "#.utf8))
        XCTAssertEqual(v["a"], .array([.number("1"), .number("-2"), .number("3.5e1"), .bool(true), .null, .string("é😀\n")]))
        XCTAssertEqual(v["b"], .object([]))
        XCTAssertEqual(StrictJSON.Value.number("-2").integer, -2)
        XCTAssertNil(StrictJSON.Value.number("2.0").integer)
        XCTAssertNil(StrictJSON.Value.bool(true).integer)
        XCTAssertNil(StrictJSON.Value.number("9223372036854775808").integer)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "\"\\x\"", "\"\\u12G4\"", "\"\\ud800\"", "[1] x", "{\"a\":1,\"a\":2}",
                    String(repeating: "[", count: StrictJSON.maxDepth + 1) + String(repeating: "]", count: StrictJSON.maxDepth + 1)] {
            XCTAssertThrowsError(try StrictJSON.parse(Data(bad.utf8)), bad)
        }
        XCTAssertNoThrow(try StrictJSON.parse(Data((String(repeating: "[", count: StrictJSON.maxDepth) + String(repeating: "]", count: StrictJSON.maxDepth)).utf8)))
    }

    /// `"n_head": 4.5` said "config is not valid JSON"; a key given twice was taken silently.
    func testConfigMessagesNameTheRealProblem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("c.json").path
        func load(_ json: String) -> String {
            _ = FileManager.default.createFile(atPath: p, contents: Data(json.utf8))
            return message { _ = try AttentionConfig.load(path: p) }
        }
        XCTAssertEqual(load(#"{"variant": "gqa", "n_embd": 32, "n_head": 4.5, "head_dim": 8, "group_size": 2}"#),
                       "\(p): config key 'n_head' must be an integer, got 4.5")
        XCTAssertEqual(load(#"{"variant": "gqa", "n_embd": 32, "n_head": 1e30, "head_dim": 8, "group_size": 2}"#),
                       "\(p): config key 'n_head' is 1e30, a number beyond a 64-bit integer")
        XCTAssertEqual(load(#"{"variant": "gqa", "n_embd": 32, "n_head": 4, "n_head": 8, "head_dim": 8, "group_size": 2}"#),
                       "\(p): config key 'n_head' appears twice")
        // Keys the harness does not read may hold anything a checkpoint's config holds.
        XCTAssertEqual(load(#"{"variant": "gqa", "n_embd": 32, "n_head": 4, "head_dim": 8, "group_size": 2, "rms_norm_eps": 1e-6}"#), "accepted")
    }

    /// `--threads` is bounded by the node's cores (WorkerPool.checkThreads, used by every command).
    func testThreadCountsAreBounded() throws {
        XCTAssertEqual(message { try WorkerPool.checkThreads(0, "--threads") }, "--threads must be at least 1, got 0")
        XCTAssertEqual(message { try WorkerPool.checkThreads(WorkerPool.coresOnline, "--threads") }, "accepted")
        XCTAssertEqual(message { try WorkerPool.checkThreads(100_000, "--threads") },
                       "--threads 100000 is more than the \(WorkerPool.coresOnline) cores of this node; at most one kernel thread per core is supported")
    }
}
