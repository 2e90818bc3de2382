/// What one rank of a TP group holds, streams and computes per decode step,
/// derived from the plans (method §4) and the cost model (method §5), never from a
/// table. "Per device" figures are the maximum over the group's ranks, since a
/// step ends when its slowest rank ends.
public struct DecodeCost: Equatable, Sendable {
    public let variant: VariantName
    public let tp: Int
    /// Cache elements per token per layer on the busiest rank (the paper's Table 1).
    public let kvElemsPerToken: Int
    /// kvElemsPerToken × dtype bytes.
    public let kvBytesPerToken: Int
    /// Nominal kernel FLOPs per cached token per layer on the busiest rank.
    public let kernelFlopsPerToken: Int
    /// Attention weight elements per layer on the rank holding the most.
    public let weightElemsPerRank: Int
    /// Bytes each rank all-reduces per token per attention layer (0 at tp 1).
    public let allreduceBytesPerToken: Int

    public init(_ layout: any AttentionLayout, tp: Int, dtype: StorageDType) throws {
        let shards = try layout.shards(tp: tp)
        variant = layout.variant
        self.tp = tp
        kvElemsPerToken = shards.map { layout.cacheWidth(units: $0.units.count) }.max()!
        kvBytesPerToken = kvElemsPerToken * dtype.bytes
        kernelFlopsPerToken = shards.map { $0.branchCount * layout.kernelFlopsPerTokenPerBranch }.max()!
        weightElemsPerRank = shards.map { layout.weightElements(for: $0) }.max()!
        allreduceBytesPerToken = tp > 1 ? layout.nEmbd * 4 : 0
    }

    /// Bytes the busiest rank's kernel streams for `sequences` sequences of `context` tokens
    /// (checked: a context from the command line can make it exceed an Int).
    public func kernelBytes(context: Int, sequences: Int = 1, layers: Int = 1) throws -> Int {
        try CheckedSize.product([kvBytesPerToken, context, sequences, layers], "the kernel bytes per step at context \(context)")
    }

    public func kernelFlops(context: Int, sequences: Int = 1, layers: Int = 1) throws -> Int {
        try CheckedSize.product([kernelFlopsPerToken, context, sequences, layers], "the kernel FLOPs per step at context \(context)")
    }
}

extension LatentLayout {
    /// Attention weight elements a rank holds (matches what `makeShard` loads).
    public func weightElements(for s: RankShard) -> Int {
        let (d, dq, dn, dr, dl) = (nEmbd, qLoraRank, nopeDim, ropeDim, blockWidth)
        let hr = s.queryHeads.count, nu = s.units.count
        return dq * d + dq + hr * (dn + dr) * dq + (nu * dl + dr) * d + nu * dl
            + s.branchCount * 2 * dn * dl + d * hr * dn
    }
}

extension GroupedLayout {
    public func weightElements(for s: RankShard) -> Int {
        let hr = s.queryHeads.count, nu = s.units.count
        return 2 * hr * headDim * nEmbd + 2 * nu * headDim * nEmbd
    }
}
