#if canImport(Glibc)
import Glibc
#endif

// The threads' partial softmax states: where they live (`ThreadScratch`, sized once
// and reused) and how `TiledAttentionKernel.run` merges them exactly.
extension TiledAttentionKernel {
    /// out[head] = Σ_t acc_t·e^(m_t − M) / Σ_t l_t·e^(m_t − M), M = max_t m_t.
    func merge(heads: Int, groupCount: Int, out: UnsafeMutablePointer<Float>) {
        for k in 0..<groupCount {
            let p = plans[k], dv = p.group.valueWidth
            for h in 0..<p.group.heads {
                let hh = p.headBase + h, o = out + p.outBase + h * dv
                var m = -Float.infinity
                for s in scratch { m = max(m, s.rowMax[hh]) }
                var total: Float = 0
                o.update(repeating: 0, count: dv)
                for s in scratch where s.rowSum[hh] > 0 {
                    let weight = expf(s.rowMax[hh] - m)
                    total += s.rowSum[hh] * weight
                    let a = s.acc + p.outBase + h * dv
                    for c in 0..<dv { o[c] += weight * a[c] }
                }
                let inv = 1 / total
                for c in 0..<dv { o[c] *= inv }
            }
        }
    }
}

extension TiledAttentionKernel {
    /// One thread's scratch: a converted tile, its scores and its partial softmax state.
    /// Separate 64-byte-aligned allocations, so threads never share a cache line.
    final class ThreadScratch {
        private(set) var tileRows = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private(set) var subTile = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private(set) var scores = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private(set) var rowMax = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private(set) var rowSum = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private(set) var acc = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        /// AVX-512 path: per padded head, e^(old max − new max) of the current tile.
        private(set) var correction = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        /// AVX-512 bf16 path (32-bit words, held as Float storage): the softmax weights in
        /// bf16 pairs of tokens, and the value columns of row pairs interleaved.
        private(set) var probabilityPairs = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private(set) var valuePairs = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        private var capacities = [16, 16, 16, 16, 16, 16, 16, 16, 16]
        private(set) var outputCount = 0
        var sink: Float = 0
        /// Where the SIMD path's prefetches of the previous tile stopped.
        var prefetchedUpTo: UnsafeRawPointer? = nil

        func reserve(tileElements: Int, subTileElements: Int, scores scoreCount: Int, heads: Int, outputs: Int,
                     probabilityPairs pairWords: Int = 0, valuePairs valueWords: Int = 0) {
            grow(&probabilityPairs, 7, pairWords)
            grow(&valuePairs, 8, valueWords)
            outputCount = outputs
            grow(&tileRows, 0, tileElements)
            grow(&subTile, 5, subTileElements)
            grow(&scores, 1, scoreCount)
            grow(&rowMax, 2, heads)
            grow(&rowSum, 3, heads)
            grow(&acc, 4, outputs)
            grow(&correction, 6, heads)
        }

        private func grow(_ p: inout UnsafeMutablePointer<Float>, _ slot: Int, _ count: Int) {
            guard count > capacities[slot] else { return }
            p.deallocate()
            p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).assumingMemoryBound(to: Float.self)
            capacities[slot] = count
        }

        deinit { [tileRows, subTile, scores, rowMax, rowSum, acc, correction, probabilityPairs, valuePairs].forEach { $0.deallocate() } }
    }
}
