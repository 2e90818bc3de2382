import MLRACore
import XCTest

/// Absorbed decode (latent cache, single-token steps) against the Double
/// reference forward, for every variant, dtype and prefill split.
final class AbsorbedDecodeTests: XCTestCase {
    func check(_ config: AttentionConfig, tokens: Int, prefill: Int, dtype: StorageDType) throws {
        let layout = try config.layout()
        let weights = SeededWeights(seed: 7)
        let x = randomInput(tokens: tokens, width: config.nEmbd, seed: 11)
        let ref = try ReferenceForward.run(layout, weights: weights, x: x.map(Double.init), tokens: tokens)
        let shard = try layout.makeShard(layout.shard(tp: 1, rank: 0), weights: weights, prefix: "")
        let cache = shard.makeCache(dtype: dtype, capacity: tokens)
        let y = runSequence(shard, x: x, tokens: tokens, prefill: prefill, cache: cache, kernel: PlainAttentionKernel())
        let tol = Tolerance.layerOutput(cache: dtype)   // stated in Support/Tolerance.swift
        assertClose(y, ref, atol: tol.atol, rtol: tol.rtol,
                    "\(config.variant.rawValue) h=\(config.nHead) T=\(tokens) T0=\(prefill) \(dtype)")
        XCTAssertEqual(cache.length, tokens)
    }

    func testEveryVariantEveryPrefillSplitF32() throws {
        for c in Shapes.all {
            for t0 in [0, 3, 9] { try check(c, tokens: 9, prefill: t0, dtype: .f32) }
        }
    }

    func testHalfPrecisionCaches() throws {
        for c in Shapes.all {
            for dtype in [StorageDType.f16, .bf16] { try check(c, tokens: 7, prefill: 2, dtype: dtype) }
        }
    }
}
