/// New tokens of one sequence in a batch: the next `tokens` rows of the input
/// belong to the sequence whose cache is `cache` (positions cache.length ..< +tokens).
public struct SequenceSegment {
    public let cache: KVCache
    public let tokens: Int
    public init(cache: KVCache, tokens: Int) { self.cache = cache; self.tokens = tokens }
}

/// The rows of a batch laid out for the kernel: each row's cache and position.
struct BatchRows {
    let caches: [KVCache]
    let positions: [Int]
    var count: Int { positions.count }

    /// Captures positions before the rows are appended.
    init(_ segments: [SequenceSegment]) {
        var caches = [KVCache](), positions = [Int]()
        for s in segments {
            for t in 0..<s.tokens { caches.append(s.cache); positions.append(s.cache.length + t) }
        }
        self.caches = caches
        self.positions = positions
    }
}

/// One rank's share of an attention layer in decode form (absorbed weights,
/// latent KV cache). `forward` runs new tokens of a batch of sequences: the
/// projections are batched over all rows; each row is appended to its
/// sequence's cache and attends to that cache's causal prefix. Its row-parallel
/// output projection (`RowParallelLinear`) sums the ranks' partial outputs over
/// the TP group (one all-reduce), so it returns the layer output [rows, D] on
/// every rank. A segment with T > 1 tokens is a prefill, a batch of one-token
/// segments is a decode step.
public protocol AttentionShard: AnyObject {
    var layout: any AttentionLayout { get }
    var shard: RankShard { get }
    var groups: [KernelGroup] { get }
    /// Bytes of weights this rank holds.
    var weightBytes: Int { get }
    func forward(_ x: [Float], segments: [SequenceSegment], kernel: AttentionKernel, collectives: TPCollectives) -> [Float]
}

extension AttentionShard {
    public var cacheWidth: Int { layout.cacheWidth(units: shard.units.count) }

    public func makeCache(dtype: StorageDType, capacity: Int) -> KVCache {
        KVCache(dtype: dtype, width: cacheWidth, capacity: capacity)
    }

    /// T new tokens of one sequence (with `SingleProcess`, this rank's partial output).
    public func forward(_ x: [Float], tokens: Int, cache: KVCache, kernel: AttentionKernel,
                        collectives: TPCollectives = SingleProcess()) -> [Float] {
        forward(x, segments: [SequenceSegment(cache: cache, tokens: tokens)], kernel: kernel, collectives: collectives)
    }

    /// One decode step of the layer for a batch: sequence b's token x[b] is
    /// appended to caches[b] and attends to it; projections are batched, and the
    /// output projection sums the whole batch's partial outputs over the TP group
    /// with one all-reduce. → [B, D]
    public func decodeStep(_ x: [Float], caches: [KVCache], kernel: AttentionKernel,
                           collectives: TPCollectives) -> [Float] {
        forward(x, segments: caches.map { SequenceSegment(cache: $0, tokens: 1) }, kernel: kernel, collectives: collectives)
    }

    /// Runs the kernel once per row over its causal prefix (cache rows
    /// 0 ...position). queries: [R, Σ heads·DK], out: [R, Σ heads·DV].
    func attend(_ rows: BatchRows, kernel: AttentionKernel, queries: [Float], out: inout [Float]) {
        let (qStride, oStride) = (groups.totalQueryCount, groups.totalOutputCount)
        queries.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows.count {
                    kernel.run(cache: rows.caches[r], length: rows.positions[r] + 1, groups: groups, scale: layout.softmaxScale,
                               queries: q.baseAddress! + r * qStride, out: o.baseAddress! + r * oStride)
                }
            }
        }
    }
}

/// Weights held by a shard, converted once to contiguous f32.
func bytes(_ tensors: [Tensor]) -> Int { tensors.reduce(0) { $0 + $1.count * 4 } }
