/// New tokens of one sequence in a batch: the next `tokens` rows of the input
/// belong to the sequence whose cache is `cache` (positions cache.length ..< +tokens).
public struct SequenceSegment {
    public let cache: KVCache
    public let tokens: Int
    public init(cache: KVCache, tokens: Int) { self.cache = cache; self.tokens = tokens }
}

/// One rank's share of an attention layer in decode form (absorbed weights,
/// latent KV cache). `forward` runs new tokens of a batch of sequences: the
/// projections are batched over all rows; each row is appended to its
/// sequence's cache and attends to that cache's causal prefix. Its row-parallel
/// output projection (`RowParallelLinear`) sums the ranks' partial outputs over
/// the TP group (one all-reduce), so it returns the layer output [rows, D] on
/// every rank. A segment with T > 1 tokens is a prefill, a batch of one-token
/// segments is a decode step.
/// It is a `BackendShard` on the CPU.
public protocol AttentionShard: BackendShard where Backend == CPUBackend {}

extension AttentionShard {
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
}

/// A rank's shard of an attention layer on a backend (`ComputeBackend`): the same plan
/// as `AttentionShard`, with the activations, weights and caches where the backend keeps
/// them. `AttentionShard` is this on the CPU, for host arrays.
public protocol BackendShard<Backend>: AnyObject {
    associatedtype Backend: ComputeBackend
    var layout: any AttentionLayout { get }
    var shard: RankShard { get }
    var groups: [KernelGroup] { get }
    /// Bytes of weights this rank holds (as f32).
    var weightBytes: Int { get }
    /// x [rows.count, D] → the layer output [rows.count, D], summed over the TP group.
    func forward(_ x: Backend.Buffer, rows: BatchRows<Backend.Cache>, on backend: Backend, attention: Backend.Attention,
                 collectives: TPCollectives) -> Backend.Buffer
}

extension BackendShard {
    /// Columns of one cached row on this rank.
    public var cacheWidth: Int { layout.cacheWidth(units: shard.units.count) }
}

extension BackendShard where Backend == CPUBackend {
    /// New tokens of a batch of sequences on host arrays (see `AttentionShard`).
    public func forward(_ x: [Float], segments: [SequenceSegment], kernel: AttentionKernel, collectives: TPCollectives) -> [Float] {
        forward(x, rows: BatchRows(caches: segments.map(\.cache), tokens: segments.map(\.tokens)), on: CPUBackend(),
                attention: kernel, collectives: collectives)
    }
}

/// Weights held by a shard, converted once to contiguous f32.
func bytes(_ tensors: [Tensor]) -> Int { tensors.reduce(0) { $0 + $1.count * 4 } }
