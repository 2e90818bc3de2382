import MLRACore
import XCTest

final class BatchTests: XCTestCase {
    /// A batched decode step over sequences of different lengths equals running each
    /// alone, up to f32 summation order (batched projections are GEMMs, single rows GEMVs).
    func testBatchedStepEqualsPerSequenceSteps() throws {
        for c in [Shapes.latent(.mlra2, h: 4, dc: 32), Shapes.grouped(.gqa, h: 6, group: 3)] {
            let layout = try c.layout()
            let shard = try layout.makeShard(layout.shard(tp: 1, rank: 0), weights: SeededWeights(seed: 2), prefix: "")
            let d = layout.nEmbd
            let lengths = [1, 4, 7]
            var batched = [KVCache](), single = [KVCache]()
            for (s, len) in lengths.enumerated() {
                let x = randomInput(tokens: len, width: d, seed: UInt64(s))
                for list in [0, 1] {
                    let cache = shard.makeCache(dtype: .f32, capacity: 8)
                    _ = shard.forward(x, tokens: len, cache: cache, kernel: PlainAttentionKernel())
                    if list == 0 { batched.append(cache) } else { single.append(cache) }
                }
            }
            let step = randomInput(tokens: lengths.count, width: d, seed: 99)
            let y = shard.decodeStep(step, caches: batched, kernel: PlainAttentionKernel(), collectives: SingleProcess())
            for s in lengths.indices {
                let alone = shard.forward(Array(step[(s * d)..<((s + 1) * d)]), tokens: 1, cache: single[s], kernel: PlainAttentionKernel())
                assertClose(Array(y[(s * d)..<((s + 1) * d)]), alone.map(Double.init), Tolerance.kernelAgreement,
                            "\(c.variant) sequence \(s)")
                XCTAssertEqual(batched[s].length, lengths[s] + 1)
            }
        }
    }
}
