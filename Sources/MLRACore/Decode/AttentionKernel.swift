/// The decode attention kernel: queries attend to the first `length` rows of a
/// rank's KV cache. Work is described by groups: every head of a group reads the
/// same cached key and value columns (an MLA-family block, or a GQA KV head).
///
/// Per group with G heads, key width DK = keyWidth + ropeWidth, value width DV:
///   queries: [G, DK] (the key part, then the RoPE part)
///   s(j)    = scale · (q_key · row_j[keyOffset ..< +keyWidth] + q_rope · row_j[ropeOffset ..< +ropeWidth])
///   out     = Σ_j softmax(s)(j) · row_j[valueOffset ..< +valueWidth]   → [G, DV]
/// Queries and outputs of all groups are concatenated in group order.
public struct KernelGroup: Equatable, Sendable {
    public let heads: Int
    public let keyOffset: Int, keyWidth: Int
    public let ropeOffset: Int, ropeWidth: Int
    public let valueOffset: Int, valueWidth: Int

    public init(heads: Int, keyOffset: Int, keyWidth: Int, ropeOffset: Int = 0, ropeWidth: Int = 0,
                valueOffset: Int, valueWidth: Int) {
        self.heads = heads; self.keyOffset = keyOffset; self.keyWidth = keyWidth
        self.ropeOffset = ropeOffset; self.ropeWidth = ropeWidth
        self.valueOffset = valueOffset; self.valueWidth = valueWidth
    }

    public var queryWidth: Int { keyWidth + ropeWidth }
}

extension Array where Element == KernelGroup {
    public var totalQueryCount: Int { reduce(0) { $0 + $1.heads * $1.queryWidth } }
    public var totalOutputCount: Int { reduce(0) { $0 + $1.heads * $1.valueWidth } }
}

public protocol AttentionKernel: AnyObject {
    func run(cache: KVCache, length: Int, groups: [KernelGroup], scale: Float,
             queries: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>)
    /// The arithmetic a call on a cache of `dtype` with these groups runs its products in
    /// (what a row records, and which tolerance its check uses).
    func productMath(dtype: StorageDType, groups: [KernelGroup]) -> ProductMath
}

extension AttentionKernel {
    /// f32 unless a kernel says otherwise (the plain kernel, the GPU kernels' CPU checks).
    public func productMath(dtype: StorageDType, groups: [KernelGroup]) -> ProductMath { .f32 }
}

/// The plain, obviously-correct kernel: every row converted to f32, full
/// scores per head, two-pass softmax. The fast kernel is tested against it.
public final class PlainAttentionKernel: AttentionKernel {
    public init() {}

    public func run(cache: KVCache, length: Int, groups: [KernelGroup], scale: Float,
                    queries: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        precondition(length >= 1 && length <= cache.length, "kernel length \(length) outside cache of \(cache.length)")
        let w = cache.width
        var rows = [Float](repeating: 0, count: length * w)
        rows.withUnsafeMutableBufferPointer { r in
            for j in 0..<length { cache.loadRow(j, into: r.baseAddress! + j * w) }
        }
        var scores = [Float](repeating: 0, count: length)
        var q = queries
        var o = out
        for g in groups {
            for _ in 0..<g.heads {
                var maxScore = -Float.infinity
                for j in 0..<length {
                    let row = j * w
                    var s: Float = 0
                    for c in 0..<g.keyWidth { s += q[c] * rows[row + g.keyOffset + c] }
                    for c in 0..<g.ropeWidth { s += q[g.keyWidth + c] * rows[row + g.ropeOffset + c] }
                    scores[j] = s * scale
                    maxScore = max(maxScore, scores[j])
                }
                var sum: Float = 0
                for j in 0..<length { scores[j] = expf(scores[j] - maxScore); sum += scores[j] }
                for c in 0..<g.valueWidth { o[c] = 0 }
                for j in 0..<length {
                    let p = scores[j] / sum
                    let row = j * w + g.valueOffset
                    for c in 0..<g.valueWidth { o[c] += p * rows[row + c] }
                }
                q += g.queryWidth
                o += g.valueWidth
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
