import Foundation
import MLRACore
import XCTest

final class ConfigTests: XCTestCase {
    func message(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as HarnessError { return e.message } catch { return "non-harness error \(error)" }
    }

    func testDecodesAuthorsKeyNames() throws {
        let json = #"{"variant": "mlra4", "n_embd": 64, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4}"#
        let c = try JSONDecoder().decode(AttentionConfig.self, from: Data(json.utf8))
        let l = try c.layout() as! LatentLayout
        XCTAssertEqual(l.blockWidth, 8)
        XCTAssertEqual(l.softmaxScale, 1 / Float(12).squareRoot())
    }

    func testSizeRulesGiveOneLineErrors() {
        XCTAssertEqual(message { _ = try Shapes.latent(.mlra4, dc: 30).layout() },
                       "mlra4 splits kv_lora_rank into 4 blocks: 30 is not divisible by 4")
        XCTAssertEqual(message { _ = try Shapes.latent(.gla2, h: 3).layout() },
                       "gla2 splits n_head into 2 head groups: 3 is not divisible by 2")
        XCTAssertEqual(message { _ = try Shapes.latent(.mlra2, h: 5).layout() },
                       "mlra2 splits n_head into 2 head groups: 5 is not divisible by 2")
        XCTAssertEqual(message { _ = try Shapes.grouped(.gqa, h: 6, group: 4).layout() },
                       "n_head must be divisible by group_size: 6 is not divisible by 4")
        XCTAssertEqual(message { _ = try Shapes.grouped(.mqa, h: 6, group: 2).layout() },
                       "mqa needs group_size 6 (n_head 6), got 2")
        XCTAssertEqual(message { _ = try Shapes.latent(.mla, h: 0).layout() }, "n_head must be positive, got 0")
        XCTAssertEqual(message { _ = try Shapes.latent(.mla, dq: 0).layout() }, "q_lora_rank must be positive, got 0")
        XCTAssertEqual(message { _ = try Shapes.grouped(.gqa, dh: -2, group: 2).layout() }, "head_dim must be positive, got -2")
        XCTAssertEqual(message { _ = try VariantName.parse("mlra3") },
                       "unknown variant 'mlra3'; expected one of mha, mqa, gqa, mla, gla2, mlra2, mlra4")
    }

    func testConfigFileErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ s: String) -> String {
            let p = dir.appendingPathComponent("c.json").path
            XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data(s.utf8)), "test file not written")
            return p
        }
        var p = write("{not json")
        XCTAssertEqual(message { _ = try AttentionConfig.load(path: p) }, "\(p): config is not valid JSON")
        p = write(#"{"variant": "mlra9", "n_embd": 4, "n_head": 2}"#)
        XCTAssertEqual(message { _ = try AttentionConfig.load(path: p) },
                       "\(p): unknown variant; expected one of mha, mqa, gqa, mla, gla2, mlra2, mlra4")
        p = write(#"{"variant": "mla", "n_head": 2}"#)
        XCTAssertEqual(message { _ = try AttentionConfig.load(path: p) }, "\(p): config is missing key 'n_embd'")
        p = write(#"{"variant": "mla", "n_embd": "x", "n_head": 2}"#)
        XCTAssertEqual(message { _ = try AttentionConfig.load(path: p) }, "\(p): config key 'n_embd' has the wrong type")
        XCTAssertEqual(message { _ = try AttentionConfig.load(path: dir.path + "/nope.json") }, "\(dir.path)/nope.json: cannot read config file")
    }
}
