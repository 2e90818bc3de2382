/// The collectives a tensor-parallel step needs, seen from one rank of a TP
/// group. MLRACore calls them at the plan's reduction points without knowing
/// about MPI; MLRAParallel implements them over a communicator, and
/// `SingleProcess` is the identity for t = 1.
public protocol TPCollectives: AnyObject {
    var tpSize: Int { get }
    var tpRank: Int { get }
    /// Sums `values` over the TP group, in place (one all-reduce).
    func allReduceSum(_ values: inout [Float])
    /// Concatenates each rank's `local` (rank r contributes counts[r] values) on every rank.
    func allGather(_ local: [Float], counts: [Int]) -> [Float]
}

public final class SingleProcess: TPCollectives {
    public init() {}
    public var tpSize: Int { 1 }
    public var tpRank: Int { 0 }
    public func allReduceSum(_ values: inout [Float]) {}
    public func allGather(_ local: [Float], counts: [Int]) -> [Float] { local }
}

/// Contiguous near-equal split of `count` items over `parts`: part p gets
/// [p·count/parts, (p+1)·count/parts). Used for MLP columns and vocabulary rows.
public func evenSplit(_ count: Int, parts: Int, part: Int) -> Range<Int> {
    (part * count / parts)..<((part + 1) * count / parts)
}

extension AttentionShard {
    /// One decode step of the layer for a batch: sequence b's token x[b] is
    /// appended to caches[b] and attends to it; projections are batched, and the
    /// partial outputs of the whole batch are summed over the TP group with one
    /// all-reduce. → [B, D]
    public func decodeStep(_ x: [Float], caches: [KVCache], kernel: AttentionKernel,
                           collectives: TPCollectives) -> [Float] {
        var out = forward(x, segments: caches.map { SequenceSegment(cache: $0, tokens: 1) }, kernel: kernel)
        collectives.allReduceSum(&out)
        return out
    }
}
