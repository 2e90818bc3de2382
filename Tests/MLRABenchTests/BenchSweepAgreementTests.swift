import Foundation
import MLRABench
import MLRACore
import XCTest

/// `mlra bench` and the sweep, given the same configuration, build the same layer and
/// judge its memory alike. Bench's side is built here as BenchCommand builds it: the
/// layer from `LayerShape` with bench's rule (--kv-heads as given, none for mha and mqa;
/// no --q-rank: q_lora_rank = --kv-rank), the footprint from `KernelWorkload.footprint`
/// for the busiest rank.
final class BenchSweepAgreementTests: XCTestCase {
    func sweepConfig(_ v: VariantName, tp: Int = 1, context: Int = 64, batch: Int = 1, scope: Scope = .kernel) throws -> SweepConfig {
        var g = SweepSpec.Grid()
        g.variants = [v]; g.tp = [tp]; g.contexts = [context]; g.batch = [batch]; g.scopes = [scope]
        g.heads = [4]; g.headDim = 16; g.ropeDim = 8; g.kvRanks = [64]; g.qLoraRank = 64; g.kvHeads = 2; g.dtypes = ["bf16"]
        return try XCTUnwrap(try SweepSpec(grids: [g]).configurations(worldSize: tp).first)
    }

    func benchShape(_ v: VariantName) -> LayerShape {
        LayerShape(variant: v, heads: 4, headDim: 16, ropeDim: 8, kvRank: 64, qLoraRank: 64,
                   kvHeads: .exactly(v == .gqa ? 2 : nil), nEmbd: 4 * 16)
    }

    /// Every variant: bench's layer config equals the sweep's, apart from the model
    /// sizes that the sweep carries for every scope.
    func testBenchAndSweepBuildTheSameLayer() throws {
        for v in VariantName.allCases {
            var sweep = try sweepConfig(v).attentionConfig
            sweep.nLayer = nil; sweep.intermediateSize = nil; sweep.vocabSize = nil
            XCTAssertEqual(benchShape(v).config, sweep, "\(v)")
            XCTAssertNoThrow(try sweep.layout(), "\(v)")
        }
        // The group sizes the rules give: mha 1, mqa h, gqa h / kv_heads.
        XCTAssertEqual(benchShape(.mha).config.groupSize, 1)
        XCTAssertEqual(benchShape(.mqa).config.groupSize, 4)
        XCTAssertEqual(benchShape(.gqa).config.groupSize, 2)
        // Bench's --kv-heads names the layer's KV heads: one contradicting mha is refused, not ignored;
        // a plan's or a grid's kv_heads is gqa's alone.
        var contradicting = benchShape(.mha); contradicting.kvHeadsRule = .exactly(2)
        XCTAssertThrowsError(try contradicting.config.layout())
        var ofGQA = benchShape(.mha); ofGQA.kvHeadsRule = .ofGQA(2)
        XCTAssertEqual(ofGQA.config.groupSize, 1)
    }

    /// One kernel-scope configuration at the boundary of the memory that fits: bench's
    /// refusal and the sweep's skip are the same footprint and the same judgement on
    /// either side of it (the sweep counts 1 rank here: tp 1 in a world of 1).
    func testBenchRefusesExactlyWhereTheSweepSkips() throws {
        let llc = 1 << 20
        for v in [VariantName.mlra4, .gqa] {
            let c = try sweepConfig(v, context: 4096, batch: 2)
            XCTAssertNil(c.skipReason())
            let layout = try benchShape(v).config.layout()
            let bench = try KernelWorkload.footprint(layout: layout, tp: 1, rank: KernelWorkload.busiestRank(layout, tp: 1), dtype: .bf16,
                                                     context: 4096, sequences: 2, coldCache: true, llcBytes: llc)
            let sweep = try c.footprint(backend: .cpu(lastLevelCacheBytes: llc))
            XCTAssertEqual(bench, sweep, "\(v)")
            // The least memory in which it fits.
            var available = Int((Double(bench.total) / MemoryBudget.usableFraction).rounded(.up))
            while MemoryBudget.shortfall(bench, ranks: 1, available: available) != nil { available += 1 }
            while MemoryBudget.shortfall(bench, ranks: 1, available: available - 1) == nil { available -= 1 }
            XCTAssertNil(MemoryBudget.shortfall(sweep, ranks: 1, available: available), "\(v): the sweep runs what bench runs")
            let refusal = try XCTUnwrap(MemoryBudget.shortfall(bench, ranks: 1, available: available - 1))
            XCTAssertEqual(MemoryBudget.shortfall(sweep, ranks: 1, available: available - 1), refusal, "\(v): the sweep skips what bench refuses")
        }
    }

    /// What KernelWorkload allocates is what its footprint predicted: caches of every set,
    /// queries and outputs.
    func testKernelWorkloadHoldsItsFootprint() throws {
        let layout = try AttentionConfig(variant: .gqa, nEmbd: 64, nHead: 4, headDim: 16, groupSize: 2).layout()
        let w = try KernelWorkload(layout: layout, shard: layout.shard(tp: 1, rank: 0), dtype: .bf16, context: 100, sequences: 3,
                                   coldCache: true, kernel: PlainAttentionKernel(), llcBytes: 100_000)
        // 11 sets of 3 × 100 rows of 64 bf16 elements; 3 × (64 + 64) floats of queries and outputs.
        XCTAssertEqual(w.cacheSets, 11)
        XCTAssertEqual(w.residentBytes, 11 * 3 * 100 * 64 * 2 + 4 * 3 * 128)
        XCTAssertEqual(w.footprint, try KernelWorkload.footprint(layout: layout, tp: 1, rank: 0, dtype: .bf16, context: 100, sequences: 3,
                                                                  coldCache: true, llcBytes: 100_000))
    }
}
