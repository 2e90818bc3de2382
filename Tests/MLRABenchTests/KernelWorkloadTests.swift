import MLRABench
import MLRACore
import MLRATestSupport
import XCTest

final class KernelWorkloadTests: XCTestCase {
    /// Bytes and FLOPs per step of the busiest rank equal DecodeCost's; cold mode spans ≥ 4 × LLC.
    func testCostsMatchDecodeCostAndColdSetsSpanTheCache() throws {
        let layout = try AttentionConfig(variant: .mlra4, nEmbd: 64, nHead: 8, qLoraRank: 16, kvLoraRank: 64,
                                         qkNopeHeadDim: 8, qkRopeHeadDim: 8).layout()
        for tp in [1, 2, 4] {
            let rank = try KernelWorkload.busiestRank(layout, tp: tp)
            let w = try KernelWorkload(layout: layout, shard: layout.shard(tp: tp, rank: rank), dtype: .bf16, context: 100,
                                       sequences: 2, coldCache: true, kernel: try TiledAttentionKernel(threads: 1), llcBytes: 1 << 20)
            let cost = try DecodeCost(layout, tp: tp, dtype: .bf16)
            XCTAssertEqual(w.bytesPerStep, try cost.kernelBytes(context: 100, sequences: 2))
            XCTAssertEqual(w.flopsPerStep, try cost.kernelFlops(context: 100, sequences: 2))
            XCTAssertGreaterThanOrEqual(w.cacheSets * w.bytesPerStep, 4 << 20)
        }
    }

    /// Steps rotate through the sets and match the plain kernel on the same data.
    func testStepOutputsMatchPlainKernel() throws {
        let layout = try AttentionConfig(variant: .gqa, nEmbd: 32, nHead: 4, headDim: 8, groupSize: 2).layout()
        let shard = try layout.shard(tp: 1, rank: 0)
        let make = { (k: AttentionKernel) in
            try KernelWorkload(layout: layout, shard: shard, dtype: .f32, context: 37, sequences: 3,
                               coldCache: false, kernel: k, seed: 9)
        }
        let fast = try make(try TiledAttentionKernel(threads: 2, tile: 8)), plain = try make(PlainAttentionKernel())
        fast.step(); plain.step()
        assertClose(fast.lastOutputs, plain.lastOutputs.map(Double.init), atol: 2e-5, rtol: 2e-4, "workload step")
    }
}
