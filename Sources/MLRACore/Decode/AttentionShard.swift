/// One rank's share of an attention layer in decode form (absorbed weights,
/// latent KV cache). `forward` runs T new tokens of one sequence: it appends
/// them to the cache (positions cache.length ..< cache.length + T) and returns
/// this rank's partial output [T, D]; summing the partials of all ranks of the
/// TP group (one all-reduce) gives the layer output. T > 1 is prefill, T = 1 a
/// decode step.
public protocol AttentionShard: AnyObject {
    var layout: any AttentionLayout { get }
    var shard: RankShard { get }
    var groups: [KernelGroup] { get }
    /// Bytes of weights this rank holds.
    var weightBytes: Int { get }
    func forward(_ x: [Float], tokens: Int, cache: KVCache, kernel: AttentionKernel) -> [Float]
}

extension AttentionShard {
    public var cacheWidth: Int { layout.cacheWidth(units: shard.units.count) }

    public func makeCache(dtype: StorageDType, capacity: Int) -> KVCache {
        KVCache(dtype: dtype, width: cacheWidth, capacity: capacity)
    }

    /// Runs the kernel once per token t over its causal prefix (cache rows
    /// 0 ..< start + t + 1). queries: [T, Σ heads·DK], out: [T, Σ heads·DV].
    func attend(cache: KVCache, start: Int, tokens: Int, kernel: AttentionKernel,
                queries: [Float], out: inout [Float]) {
        let (qStride, oStride) = (groups.totalQueryCount, groups.totalOutputCount)
        queries.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { o in
                for t in 0..<tokens {
                    kernel.run(cache: cache, length: start + t + 1, groups: groups, scale: layout.softmaxScale,
                               queries: q.baseAddress! + t * qStride, out: o.baseAddress! + t * oStride)
                }
            }
        }
    }
}

/// Weights held by a shard, converted once to contiguous f32.
func bytes(_ tensors: [Tensor]) -> Int { tensors.reduce(0) { $0 + $1.count * 4 } }
