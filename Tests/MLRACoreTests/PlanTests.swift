import MLRACore
import XCTest

final class PlanTests: XCTestCase {
    func latent(_ v: VariantName, h: Int = 8) throws -> LatentLayout {
        try Shapes.latent(v, h: h, dc: 64).layout() as! LatentLayout
    }

    func testMLRA2BlocksServeHeadGroupBlockMod2() throws {
        let l = try latent(.mlra2)
        XCTAssertEqual((0..<4).map { l.servedHeads(block: $0) }, [0..<4, 4..<8, 0..<4, 4..<8])
        XCTAssertEqual(l.alpha, 1 / Float(2).squareRoot())
        let t2 = try l.shards(tp: 2)
        XCTAssertEqual(t2.map(\.units), [[0, 2], [1, 3]])
        XCTAssertEqual(t2.map(\.queryHeads), [0..<4, 4..<8])
        let t4 = try l.shards(tp: 4)
        XCTAssertEqual(t4.map(\.units), [[0], [1], [2], [3]])
        XCTAssertEqual(t4.map(\.queryHeads), [0..<4, 4..<8, 0..<4, 4..<8])
        let t8 = try l.shards(tp: 8)
        XCTAssertEqual(t8.map(\.units), [[0], [1], [2], [3], [0], [1], [2], [3]])
        XCTAssertEqual(t8.map(\.queryHeads), [0..<2, 4..<6, 0..<2, 4..<6, 2..<4, 6..<8, 2..<4, 6..<8])
    }

    func testGLA2HeadGroups() throws {
        let l = try latent(.gla2)
        XCTAssertEqual([l.servedHeads(block: 0), l.servedHeads(block: 1)], [0..<4, 4..<8])
        XCTAssertEqual(try l.shard(tp: 1, rank: 0).unitHeads, [0..<4, 4..<8])
        XCTAssertEqual(try l.shards(tp: 4).map(\.units), [[0], [0], [1], [1]])
        XCTAssertEqual(try l.shards(tp: 4).map(\.queryHeads), [0..<2, 2..<4, 4..<6, 6..<8])
    }

    /// Every (block or KV head, query head) branch is computed by exactly one rank at every legal TP.
    func testEveryBranchOnExactlyOneRank() throws {
        for c in Shapes.all + [Shapes.latent(.mlra4, h: 8, dc: 64), Shapes.latent(.mlra2, h: 8, dc: 64), Shapes.grouped(.gqa, h: 8, group: 4)] {
            let layout = try c.layout()
            let full = try layout.shard(tp: 1, rank: 0)
            let expected = Set(zip(full.units, full.unitHeads).flatMap { u, hs in hs.map { [u, $0] } })
            for tp in [1, 2, 4, 8] {
                guard let shards = try? layout.shards(tp: tp) else { continue }
                var seen = [[Int]]()
                for s in shards { for (u, hs) in zip(s.units, s.unitHeads) { for h in hs { seen.append([u, h]) } } }
                XCTAssertEqual(Set(seen), expected, "\(c.variant) tp=\(tp)")
                XCTAssertEqual(seen.count, expected.count, "\(c.variant) tp=\(tp): a branch on two ranks")
            }
        }
    }

    /// method §4 Table 1: h = 64, d_h = d_n = 128, d_r = 64, d_c = 512, GQA n_kv = 8.
    func testReproducesPaperTable1() throws {
        let dh = 128
        func elems(_ c: AttentionConfig, _ tp: Int) throws -> Double {
            Double(try DecodeCost(c.layout(), tp: tp, dtype: .bf16).kvElemsPerToken) / Double(dh)
        }
        let lat = { (v: VariantName) in AttentionConfig(variant: v, nEmbd: 8192, nHead: 64, qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64) }
        let table: [(AttentionConfig, [Double])] = [
            (AttentionConfig(variant: .mha, nEmbd: 8192, nHead: 64, headDim: 128), [128, 64, 32, 16]),
            (AttentionConfig(variant: .gqa, nEmbd: 8192, nHead: 64, headDim: 128, groupSize: 8), [16, 8, 4, 2]),
            (lat(.mla), [4.5, 4.5, 4.5, 4.5]),
            (lat(.gla2), [4.5, 2.5, 2.5, 2.5]),
            (lat(.mlra4), [4.5, 2.5, 1.5, 1.5]),
        ]
        for (c, row) in table {
            XCTAssertEqual(try [1, 2, 4, 8].map { try elems(c, $0) }, row, "\(c.variant)")
        }
    }

    func testIllegalTPDegreesNameTheRule() throws {
        XCTAssertThrowsError(try latent(.mlra4).shard(tp: 3, rank: 0)) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "mlra4 cannot run at TP degree 3: the degree must be 1, 2, 4, 8, …")
        }
        XCTAssertThrowsError(try Shapes.latent(.mla, h: 3).layout().shard(tp: 2, rank: 0)) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "mla cannot run at TP degree 2: its 3 heads per group are not divisible by 2")
        }
        XCTAssertThrowsError(try Shapes.grouped(.gqa, h: 6, group: 2).layout().shard(tp: 2, rank: 0)) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "gqa cannot run at TP degree 2: 3 KV heads are not divisible by 2")
        }
    }

    func testWeightElementsMatchWhatShardsLoad() throws {
        for c in Shapes.all {
            let layout = try c.layout()
            for tp in [1, 2, 4] {
                guard let shards = try? layout.shards(tp: tp) else { continue }
                for s in shards {
                    let shard = try layout.makeShard(s, weights: SeededWeights(seed: 1), prefix: "")
                    XCTAssertEqual(shard.weightBytes, 4 * layout.weightElements(for: s), "\(c.variant) tp=\(tp) rank=\(s.rank)")
                }
            }
        }
    }
}
