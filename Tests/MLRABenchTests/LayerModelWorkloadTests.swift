@testable import MLRABench
import MLRACore
import XCTest

/// Layer and model scope with cold caches (issue 14): the workloads keep kernel scope's
/// count of cache sets, step through them in turn, append to the set a step takes, never
/// grow a cache, hold what MemoryFootprint (the sweep's memory check) predicted, and
/// compute on their first set what the warm workload computes.
///
/// The layer throughout: GQA, 4 query heads of 16 over 2 KV heads, n_embd 64, tp 1: a
/// cache row of 2 · 2 · 16 = 64 bf16 elements, 128 bytes. 2 sequences of 50 tokens:
/// 12800 bytes a set. 2 warm-up and 7 timed steps append 9 tokens over the sets.
final class LayerModelWorkloadTests: XCTestCase {
    let context = 50, sequences = 2, llc = 10_000

    func config(_ scope: Scope, cold: Bool) throws -> SweepConfig {
        var g = SweepSpec.Grid()
        g.variants = [.gqa]; g.scopes = [scope]; g.tp = [1]; g.contexts = [context]; g.batch = [sequences]
        g.heads = [4]; g.headDim = 16; g.kvHeads = 2; g.nEmbd = 64; g.dtypes = ["bf16"]
        g.nLayer = 2; g.intermediateSize = 32; g.vocabSize = 50
        g.warmup = 2; g.steps = 7; g.coldCache = cold
        let c = try XCTUnwrap(try SweepSpec(grids: [g]).configurations(worldSize: 1).first)
        XCTAssertEqual(c.coldCache, cold, "cold_cache applies to \(scope) scope")
        XCTAssertEqual(c.sequencesPerReplica, sequences)
        return c
    }

    /// Steps through `steps` of a workload whose sets are `sets()`: before step k the
    /// workload takes set k mod S, and afterwards set j holds context + (steps of the
    /// first k + 1 that landed on j) rows, in caches of the capacity first allocated.
    /// Returns the outputs of every step.
    func stepAndCheck(_ steps: Int, sets: () -> [[KVCache]], next: () -> Int, step: () -> [Float],
                      file: StaticString = #filePath, line: UInt = #line) -> [[Float]] {
        let count = sets().count
        let capacities = sets().map { $0.map(\.capacity) }
        var outputs = [[Float]]()
        for k in 0..<steps {
            XCTAssertEqual(next(), k % count, "step \(k) takes the next set", file: file, line: line)
            outputs.append(step())
            for (j, set) in sets().enumerated() {
                let landed = (0...k).filter { $0 % count == j }.count
                for cache in set {
                    XCTAssertEqual(cache.length, context + landed, "set \(j) after step \(k)", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(sets().map { $0.map(\.capacity) }, capacities, "no cache grew while stepping", file: file, line: line)
        return outputs
    }

    /// A workload's caches (`caches`, every set's) and its footprint: `sets` sets of caches
    /// for `capacity` tokens, `bytes` allocated in all, what the sweep's memory check
    /// predicts for `c` (returned).
    @discardableResult
    func assertHoldsItsPrediction(_ caches: [KVCache], _ footprint: MemoryFootprint, of c: SweepConfig, sets: Int, capacity: Int,
                                  bytes: Int, file: StaticString = #filePath, line: UInt = #line) throws -> MemoryFootprint {
        XCTAssertEqual(footprint.cacheSets, sets, file: file, line: line)
        XCTAssertEqual(footprint.cacheCapacity, capacity, file: file, line: line)
        XCTAssertTrue(caches.allSatisfy { $0.capacity == capacity && $0.length == context }, file: file, line: line)
        let allocated = caches.map(\.allocatedBytes).reduce(0, +)
        XCTAssertEqual(allocated, bytes, file: file, line: line)
        let predicted = try c.footprint(backend: .cpu(lastLevelCacheBytes: llc))
        XCTAssertEqual(predicted.caches, allocated, "the sweep predicts what is allocated", file: file, line: line)
        XCTAssertEqual(predicted.cacheSets, sets, file: file, line: line)
        return predicted
    }

    /// Layer scope: sets = ⌈… 4 × 10000 / 12800⌉ = 4 (MemoryFootprint.coldCacheSets), each
    /// cache for 50 + ⌈9 / 4⌉ + 1 = 54 tokens: 4 · 2 · 54 · 128 = 55296 bytes of caches.
    func testColdLayerStepRotatesThroughSetsOfTheRightCapacity() throws {
        let c = try config(.layer, cold: true)
        let layout = try c.attentionConfig.layout()
        let shard = try layout.makeShard(layout.shard(tp: 1, rank: 0), weights: SeededWeights(seed: 3), prefix: "")
        func make(_ c: SweepConfig) throws -> LayerStep {
            try LayerStep(shard: shard, sequences: sequences, context: context, dtype: .bf16, appending: c.appending, llcBytes: llc,
                          kernel: PlainAttentionKernel())
        }
        let cold = try make(c)
        XCTAssertEqual(cold.rotation.sets.count, 4)
        XCTAssertTrue(cold.rotation.sets.allSatisfy { $0.count == sequences })
        let predicted = try assertHoldsItsPrediction(Array(cold.rotation.sets.joined()), cold.rotation.footprint, of: c,
                                                     sets: 4, capacity: 54, bytes: 55296)
        XCTAssertEqual(predicted.weights, shard.weightBytes)
        XCTAssertEqual(predicted, try MemoryFootprint(layout: layout, tp: 1, dtype: .bf16, workload: .layer, context: context,
                                                      sequences: sequences, backend: .cpu(lastLevelCacheBytes: llc), reference: true,
                                                      appending: .init(steps: 9, coldCache: true)))

        let coldOut = stepAndCheck(9, sets: { cold.rotation.sets }, next: { cold.rotation.next }) {
            cold.step(collectives: SingleProcess()); return cold.lastOutputs
        }
        // Warm: one set of 50 + 9 + 1 tokens, the values of the cold workload's first set.
        let warm = try make(try config(.layer, cold: false))
        XCTAssertEqual(warm.rotation.sets.count, 1)
        XCTAssertEqual(warm.rotation.footprint.cacheCapacity, 60)
        let warmOut = stepAndCheck(2, sets: { warm.rotation.sets }, next: { warm.rotation.next }) {
            warm.step(collectives: SingleProcess()); return warm.lastOutputs
        }
        XCTAssertEqual(coldOut[0].count, sequences * 64)
        XCTAssertEqual(coldOut[0], warmOut[0], "the first step of cold and warm runs on the same seeded values")
        XCTAssertNotEqual(coldOut[1], warmOut[1], "the second cold step runs on a set of its own values")
    }

    /// Model scope, 2 layers: a set at the context is 2 sequences × 2 layers × 50 × 128 =
    /// 25600 bytes, so ⌈4 × 10000 / 25600⌉ = 2 sets, each cache for 50 + ⌈9 / 2⌉ + 1 = 56
    /// tokens: 2 · 2 · 2 · 56 · 128 = 57344 bytes of caches.
    func testColdModelStepRotatesThroughSetsOfTheRightCapacity() throws {
        let c = try config(.model, cold: true)
        let model = try DecoderShard(layout: ModelLayout(config: c.attentionConfig), tp: 1, rank: 0, weights: SeededWeights(seed: 3))
        func make(_ c: SweepConfig) throws -> ModelStep {
            try ModelStep(model: model, sequences: sequences, context: context, dtype: .bf16, appending: c.appending, llcBytes: llc,
                          kernel: PlainAttentionKernel())
        }
        let cold = try make(c)
        XCTAssertEqual(cold.rotation.sets.count, 2)
        XCTAssertTrue(cold.rotation.sets.allSatisfy { $0.count == sequences && $0.allSatisfy { $0.count == 2 } })
        try assertHoldsItsPrediction(Array(cold.rotation.sets.joined().joined()), cold.rotation.footprint, of: c,
                                     sets: 2, capacity: 56, bytes: 57344)

        // Per set, the caches of every layer of a sequence step together: check them as one list.
        let layerSets = { cold.rotation.sets.map { Array($0.joined()) } }
        let coldOut = stepAndCheck(9, sets: layerSets, next: { cold.rotation.next }) {
            cold.step(collectives: SingleProcess()); return cold.lastOutputs
        }
        let warm = try make(try config(.model, cold: false))
        XCTAssertEqual(warm.rotation.sets.count, 1)
        XCTAssertEqual(warm.rotation.footprint.cacheCapacity, 60)
        let warmOut = stepAndCheck(1, sets: { warm.rotation.sets.map { Array($0.joined()) } }, next: { warm.rotation.next }) {
            warm.step(collectives: SingleProcess()); return warm.lastOutputs
        }
        XCTAssertEqual(coldOut[0].count, sequences * 50)
        XCTAssertEqual(coldOut[0], warmOut[0], "the first step of cold and warm runs on the same seeded values")
    }

    /// A cold layer configuration too large for the node is refused by the one prediction
    /// with its sets named, before anything is allocated; warm, the same configuration fits.
    func testTheMemoryCheckCountsTheColdSets() throws {
        let big = 1 << 34   // a 16 GiB LLC: cold sets spanning 64 GiB
        let cold = try config(.layer, cold: true).footprint(backend: .cpu(lastLevelCacheBytes: big))
        let warm = try config(.layer, cold: false).footprint(backend: .cpu(lastLevelCacheBytes: big))
        XCTAssertEqual(warm.cacheSets, 1)
        XCTAssertGreaterThanOrEqual(cold.caches, 4 * big)
        let available = 8 << 30
        XCTAssertNil(MemoryBudget.shortfall(warm, ranks: 1, available: available))
        let short = try XCTUnwrap(MemoryBudget.shortfall(cold, ranks: 1, available: available))
        XCTAssertTrue(short.hasPrefix("needs ") && short.contains("(\(cold.cacheSets) sets)"), short)
    }
}
