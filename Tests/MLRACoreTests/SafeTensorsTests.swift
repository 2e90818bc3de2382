import Foundation
import MLRACore
import XCTest

final class SafeTensorsTests: XCTestCase {
    func testRoundTripInEveryDType() throws {
        let t = Tensor(shape: [2, 3], data: [1, -2.5, 0.15625, 3e-3, 65504, -0])
        for dtype in StorageDType.allCases {
            let data = try SafeTensorsFile.encode(["a": t, "b": Tensor(shape: [0], data: [])], dtype: dtype, metadata: ["k": "v"])
            let file = try SafeTensorsFile(bytes: data)
            XCTAssertEqual(file.metadata, ["k": "v"])
            XCTAssertEqual(file.entries["a"]?.dtype, dtype)
            let back = try file.tensor("a", expectedShape: [2, 3])
            for (x, y) in zip(back.data, t.data) {
                let expected: Float = switch dtype {
                case .f32: y
                case .f16: Float(Float16(y))
                case .bf16: BFloat16(y).float
                }
                XCTAssertEqual(x, expected, "\(dtype)")
            }
            XCTAssertEqual(try file.tensor("b").shape, [0])
        }
        // BF16 keeps exactly the top 16 bits: these values survive unchanged.
        let exact = Tensor(shape: [3], data: [1.0, -0.5, 3.0])
        XCTAssertEqual(try SafeTensorsFile(bytes: SafeTensorsFile.encode(["x": exact], dtype: .bf16)).tensor("x"), exact)
    }

    func testWrongShapeNamesTensorAndBothShapes() throws {
        let data = try SafeTensorsFile.encode(["q_a_proj.weight": Tensor(zeros: [4, 3])])
        let file = try SafeTensorsFile(bytes: data, path: "w.safetensors")
        XCTAssertThrowsError(try file.tensor("q_a_proj.weight", expectedShape: [3, 4])) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "w.safetensors: tensor 'q_a_proj.weight' has shape [4, 3], expected [3, 4]")
        }
        XCTAssertThrowsError(try file.tensor("c_proj.weight")) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "w.safetensors: missing tensor 'c_proj.weight'")
        }
    }

    func header(_ json: String, data: Int = 0, lengthOverride: UInt64? = nil) -> Data {
        var d = Data()
        withUnsafeBytes(of: (lengthOverride ?? UInt64(json.utf8.count)).littleEndian) { d.append(contentsOf: $0) }
        d.append(Data(json.utf8))
        d.append(Data(count: data))
        return d
    }

    func testMalformedFilesAreRejectedWithReasons() {
        let cases: [(Data, String)] = [
            (Data([1, 2, 3]), "shorter than the 8-byte header length"),
            (header("{}", lengthOverride: 1000), "runs past the end"),
            (header("{bad"), "header is not JSON"),
            (header("[1]"), "header is not a JSON object"),
            (header(#"{"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}"#, data: 8), "dtype 'I64'"),
            (header(#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}"#, data: 4), "lie outside"),
            (header(#"{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: 8), "needs 12 bytes but data_offsets span 8"),
            (header(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: 8), "overlap"),
            (header(#"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}"#), "malformed shape"),
            (header(#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [8]}}"#, data: 8), "malformed data_offsets"),
        ]
        for (bytes, reason) in cases {
            XCTAssertThrowsError(try SafeTensorsFile(bytes: bytes, path: "f")) { e in
                let m = (e as? HarnessError)?.message ?? "\(e)"
                XCTAssertTrue(m.hasPrefix("f: not a valid safetensors file: ") && m.contains(reason), m)
            }
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: "/nonexistent/x.safetensors")) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "/nonexistent/x.safetensors: no such file")
        }
    }

    /// A checkpoint written with the authors' names loads into a shard identical to the seeded one.
    func testCheckpointLoadsLikeSeededWeights() throws {
        let layout = try Shapes.latent(.mlra4, h: 3, dc: 32).layout()
        let seeded = SeededWeights(seed: 5)
        var tensors = [String: Tensor]()
        for p in layout.parameters { tensors[p.name] = try seeded.load(p) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("w-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensorsFile.write(tensors, to: path)
        let loaded = try SafeTensorsWeights(path: path)
        XCTAssertEqual(loaded.unusedNames(layout.parameters), [])
        let x = randomInput(tokens: 4, width: layout.nEmbd, seed: 2)
        func run(_ w: WeightSource) throws -> [Float] {
            let s = try layout.makeShard(layout.shard(tp: 1, rank: 0), weights: w, prefix: "")
            return runSequence(s, x: x, tokens: 4, prefill: 2, cache: s.makeCache(dtype: .f32, capacity: 4), kernel: PlainAttentionKernel())
        }
        XCTAssertEqual(try run(loaded), try run(seeded))
    }
}
