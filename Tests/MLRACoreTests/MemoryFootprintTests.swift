import MLRACore
import XCTest

/// The one memory model, against bytes counted by hand from the layouts' shapes.
///
/// The layer used throughout: GQA, h = 4 query heads of d_h = 16, 2 KV heads (group
/// size 2), n_embd 64. Its parameters: c_q [64, 64], c_k [32, 64], c_v [32, 64],
/// c_proj [64, 64] = 4096 + 2048 + 2048 + 4096 = 12288 elements.
final class MemoryFootprintTests: XCTestCase {
    func gqa(nLayer: Int? = nil) -> AttentionConfig {
        AttentionConfig(variant: .gqa, nEmbd: 64, nHead: 4, headDim: 16, groupSize: 2,
                        nLayer: nLayer, intermediateSize: nLayer.map { _ in 32 }, vocabSize: nLayer.map { _ in 50 })
    }

    /// Kernel scope at tp 1: a row holds K and V of both KV heads, 2 · 2 · 16 = 64
    /// elements, 128 bytes in bf16. 3 sequences of 100 tokens: a set of 38400 bytes.
    /// Cold against a 100000-byte cache: ⌈4 · 100000 / 38400⌉ = 11 sets. Queries and
    /// outputs: 2 groups × 2 heads × 16 = 64 floats each per sequence, 4 · 3 · 128 = 1536 bytes.
    func testKernelScope() throws {
        let layout = try gqa().layout()
        let cold = try MemoryFootprint(layout: layout, tp: 1, dtype: .bf16, workload: .kernel(coldCache: true), context: 100,
                                       sequences: 3, backend: .cpu(lastLevelCacheBytes: 100_000))
        XCTAssertEqual(cold.cacheSets, 11)
        XCTAssertEqual(cold.caches, 11 * 38400)
        XCTAssertEqual(cold.activations, 1536)
        XCTAssertEqual(cold.weights + cold.reference + cold.partialStates, 0, "kernel scope holds no weights")
        XCTAssertEqual(cold.total, 422_400 + 1536)

        let warm = try MemoryFootprint(layout: layout, tp: 1, dtype: .bf16, workload: .kernel(coldCache: false), context: 100,
                                       sequences: 3, backend: .cpu(lastLevelCacheBytes: 100_000))
        XCTAssertEqual(warm.cacheSets, 1)
        XCTAssertEqual(warm.total, 38400 + 1536)

        // On a GPU with 2 SMs: splits = min(2 · 8, ⌈100 / 16⌉) = 7; per group
        // 3 sequences × 2 heads × 7 splits × (16 + 2) floats = 756 floats, 3024 bytes.
        let gpu = try MemoryFootprint(layout: layout, tp: 1, dtype: .bf16, workload: .kernel(coldCache: true),
                                      lengths: [100, 100, 100], backend: .gpu(l2Bytes: 100_000, smCount: 2))
        XCTAssertEqual(gpu.partialStates, 2 * 3024)
        XCTAssertEqual(gpu.total, 422_400 + 1536 + 6048)
        // The sweep gives equal lengths as a context and a count: the same bytes.
        XCTAssertEqual(gpu, try MemoryFootprint(layout: layout, tp: 1, dtype: .bf16, workload: .kernel(coldCache: true), context: 100,
                                                sequences: 3, backend: .gpu(l2Bytes: 100_000, smCount: 2)))
    }

    /// Layer scope at tp 2: each rank computes 2 query heads over 1 KV head, a row of
    /// 32 elements, 64 bytes in f16; 2 sequences × 10 tokens: 1280 bytes. Its weights:
    /// c_q and c_proj slices 2 · 2 · 16 · 64 = 4096 plus c_k and c_v slices
    /// 2 · 1 · 16 · 64 = 2048 elements, 24576 bytes. Validated against the reference:
    /// the whole layer in f32 and Double, 12 · 12288 = 147456 bytes. Forward's input:
    /// 10 rows of 64 in f32 and Double, 12 · 10 · 64 = 7680 bytes.
    func testLayerScope() throws {
        let layout = try gqa().layout()
        let plain = try MemoryFootprint(layout: layout, tp: 2, dtype: .f16, workload: .layer, context: 10, sequences: 2)
        XCTAssertEqual(plain.caches, 1280)
        XCTAssertEqual(plain.weights, 24576)
        XCTAssertEqual(plain.total, 1280 + 24576)

        let validated = try MemoryFootprint(layout: layout, tp: 2, dtype: .f16, workload: .layer, context: 10, sequences: 2, reference: true)
        XCTAssertEqual(validated.reference, 147_456)
        XCTAssertEqual(validated.total, 1280 + 24576 + 147_456)

        let forward = try MemoryFootprint(layout: layout, tp: 2, rank: 1, dtype: .f16, workload: .layer, context: 10, sequences: 1,
                                          inputRows: 10)
        XCTAssertEqual(forward.activations, 7680)
        XCTAssertEqual(forward.total, 640 + 24576 + 7680)
    }

    /// Model scope, 2 layers, intermediate 32, vocabulary 50, tp 2, f32: caches of a row
    /// of 32 elements × 4 bytes × 5 tokens × 2 layers = 1280 bytes. The model's
    /// parameters: wte 50 · 64 = 3200, per layer two norms of 64, attention 12288 and
    /// the MLP 3 · 32 · 64 = 6144 (18560), the final norm 64: 3200 + 2 · 18560 + 64 =
    /// 40384. The rank's weights: 4 · 40384 / 2 + the gathered lm_head 4 · 50 · 64 =
    /// 80768 + 12800. Logits of 3 generated tokens: 4 · 50 · 3 = 600 bytes; the
    /// one-process reference model: 4 · 40384.
    func testModelScope() throws {
        let model = try ModelLayout(config: gqa(nLayer: 2))
        let generate = try MemoryFootprint(layout: model.attention, tp: 2, dtype: .f32, workload: .model(model), context: 5, sequences: 1,
                                           logitRows: 3)
        XCTAssertEqual(generate.caches, 1280)
        XCTAssertEqual(generate.weights, 80768 + 12800)
        XCTAssertEqual(generate.activations, 600)
        XCTAssertEqual(generate.total, 1280 + 93568 + 600)

        let sweep = try MemoryFootprint(layout: model.attention, tp: 2, dtype: .f32, workload: .model(model), context: 5, sequences: 1,
                                        reference: true)
        XCTAssertEqual(sweep.reference, 4 * 40384)
        XCTAssertEqual(sweep.total, 1280 + 93568 + 161_536)
    }

    /// Layer and model scope as the sweep runs them (`Appending`), with testLayerScope's and
    /// testModelScope's layers: a set at the context is 1280 bytes in both. Warm, one set
    /// whose caches take every appended token and one to spare. Cold against a 1000-byte
    /// LLC: ⌈4 · 1000 / 1280⌉ = 4 sets (kernel scope's count), each cache taking
    /// ⌈steps / 4⌉ of the appended tokens and one to spare.
    func testLayerAndModelScopeAppendToRotatedSets() throws {
        let layout = try gqa().layout()
        let llc = MemoryFootprint.Backend.cpu(lastLevelCacheBytes: 1000)
        func layer(_ cold: Bool) throws -> MemoryFootprint {
            try MemoryFootprint(layout: layout, tp: 2, dtype: .f16, workload: .layer, context: 10, sequences: 2, backend: llc,
                                appending: .init(steps: 23, coldCache: cold))
        }
        // Warm: 2 sequences × (10 + 23 + 1) tokens × 64 bytes.
        XCTAssertEqual(try layer(false).cacheSets, 1)
        XCTAssertEqual(try layer(false).cacheCapacity, 34)
        XCTAssertEqual(try layer(false).caches, 4352)
        // Cold: 4 sets × 2 sequences × (10 + ⌈23 / 4⌉ + 1 = 17) tokens × 64 bytes; the weights do not rotate.
        XCTAssertEqual(try layer(true).cacheSets, 4)
        XCTAssertEqual(try layer(true).cacheCapacity, 17)
        XCTAssertEqual(try layer(true).caches, 8704)
        XCTAssertEqual(try layer(true).weights, 24576)
        let breakdown = try layer(true).breakdown
        XCTAssertTrue(breakdown.hasPrefix("caches 8.50 KiB (4 sets) + "), breakdown)
        // Without Appending, the caches hold the context given (forward, generate).
        XCTAssertEqual(try MemoryFootprint(layout: layout, tp: 2, dtype: .f16, workload: .layer, context: 10, sequences: 2,
                                           backend: llc).caches, 1280)

        // Model scope, 2 layers, f32, 1 sequence of 5 tokens, 6 steps: warm 5 + 6 + 1 = 12
        // tokens × 128 bytes × 2 layers; cold 4 sets of 5 + ⌈6 / 4⌉ + 1 = 8 tokens.
        let model = try ModelLayout(config: gqa(nLayer: 2))
        func decoder(_ cold: Bool) throws -> MemoryFootprint {
            try MemoryFootprint(layout: model.attention, tp: 2, dtype: .f32, workload: .model(model), context: 5, sequences: 1,
                                backend: llc, appending: .init(steps: 6, coldCache: cold))
        }
        XCTAssertEqual(try decoder(false).caches, 3072)
        XCTAssertEqual(try decoder(true).cacheSets, 4)
        XCTAssertEqual(try decoder(true).cacheCapacity, 8)
        XCTAssertEqual(try decoder(true).caches, 8192)

        XCTAssertEqual(try MemoryFootprint.appendingCapacity(context: 10, steps: 0, sets: 3), 11)
        XCTAssertEqual(try MemoryFootprint.appendingCapacity(context: 10, steps: 7, sets: 7), 12)
        XCTAssertEqual(try MemoryFootprint.appendingCapacity(context: 10, steps: 7, sets: 0), 18)
        XCTAssertThrowsError(try MemoryFootprint(layout: layout, tp: 2, dtype: .f16, workload: .layer, context: 10, sequences: 2,
                                                 appending: .init(steps: -1, coldCache: true))) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "the appended steps must be at least 0 (got -1)")
        }
    }

    /// Without a named rank the footprint is that of the plan's rank that needs the most.
    func testUnnamedRankIsTheBusiest() throws {
        let mlra4 = try AttentionConfig(variant: .mlra4, nEmbd: 64, nHead: 8, qLoraRank: 16, kvLoraRank: 64,
                                        qkNopeHeadDim: 8, qkRopeHeadDim: 8).layout()
        for tp in [1, 2, 4] {
            let all = try (0..<tp).map {
                try MemoryFootprint(layout: mlra4, tp: tp, rank: $0, dtype: .bf16, workload: .layer, context: 64, sequences: 2).total
            }
            XCTAssertEqual(try MemoryFootprint(layout: mlra4, tp: tp, dtype: .bf16, workload: .layer, context: 64, sequences: 2).total,
                           all.max())
        }
    }

    /// Sizes from flags that exceed an Int are an error naming the workload, not a trap.
    func testSizesBeyondAnIntAreRefusedByName() throws {
        let layout = try gqa().layout()
        XCTAssertThrowsError(try MemoryFootprint(layout: layout, tp: 1, dtype: .f32, workload: .layer, context: 1 << 60, sequences: 4,
                                                 what: "the memory of this test")) {
            XCTAssertTrue(($0 as? HarnessError)?.message.hasPrefix("the memory of this test is too large") ?? false, "\($0)")
        }
    }

    /// A shortfall names the components the rank would hold.
    func testShortfallNamesTheComponents() throws {
        let f = try MemoryFootprint(layout: try gqa().layout(), tp: 1, dtype: .bf16, workload: .kernel(coldCache: true), context: 100,
                                    sequences: 3, backend: .cpu(lastLevelCacheBytes: 100_000))
        XCTAssertNil(MemoryBudget.shortfall(f, ranks: 1, available: 1 << 30))
        let short = try XCTUnwrap(MemoryBudget.shortfall(f, ranks: 2, available: 1000))
        XCTAssertTrue(short.hasPrefix("needs "), short)
        XCTAssertTrue(short.hasSuffix("(per rank: caches 412.50 KiB (11 sets) + activations 1.50 KiB)"), short)
    }
}
