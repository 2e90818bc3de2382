/// A parameter of a layer: its checkpoint name (relative to the layer), full
/// shape, and how seeded runs initialise it.
public struct ParamSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let kind: SeededInit.Kind
    public init(_ name: String, _ shape: [Int], _ kind: SeededInit.Kind) {
        self.name = name; self.shape = shape; self.kind = kind
    }
    public func prefixed(_ prefix: String) -> ParamSpec { ParamSpec(prefix + name, shape, kind) }
}

/// What one tensor-parallel rank of an attention layer holds and computes
/// (method §4). `units` are latent blocks (MLA family) or KV heads (GQA family),
/// in the order their vectors sit in a cache row.
public struct RankShard: Equatable, Sendable {
    public let tp: Int
    public let rank: Int
    /// Query heads whose q this rank computes (always contiguous).
    public let queryHeads: Range<Int>
    /// Cached units held by this rank, in cache-row order.
    public let units: [Int]
    /// For each held unit, the query heads (within `queryHeads`) that attend to it.
    public let unitHeads: [Range<Int>]

    public var branchCount: Int { unitHeads.reduce(0) { $0 + $1.count } }
}

/// The shape of one attention variant's layer: sizes derived once from the
/// config, its checkpoint parameters, its tensor-parallel plan and its cost.
public protocol AttentionLayout: Sendable {
    var variant: VariantName { get }
    var nEmbd: Int { get }
    var nHead: Int { get }
    /// Width of each head's output vector (d_n for the MLA family, d_h for GQA).
    var valueHeadDim: Int { get }
    /// 1/sqrt of the un-absorbed q·k width.
    var softmaxScale: Float { get }
    /// Checkpoint parameters of the layer, names relative to the layer.
    var parameters: [ParamSpec] { get }
    /// Number of cacheable units (latent blocks or KV heads).
    var unitCount: Int { get }
    /// The rank's shard at TP degree `tp`, or an error naming the rule broken.
    func shard(tp: Int, rank: Int) throws -> RankShard
    /// Cache elements per token for a rank holding `units`.
    func cacheWidth(units: Int) -> Int
    /// Nominal kernel FLOPs per cached token for one branch (method §5).
    var kernelFlopsPerTokenPerBranch: Int { get }
    /// The kernel's work for a rank: one group per held unit.
    func kernelGroups(for shard: RankShard) -> [KernelGroup]
    /// Attention weight elements the rank holds under `shard`.
    func weightElements(for shard: RankShard) -> Int
    /// Builds the rank's decode shard, loading only its slice of the weights.
    func makeShard(_ shard: RankShard, weights: WeightSource, prefix: String) throws -> any AttentionShard
    /// The same shard with its weights on `backend`.
    func makeShard<B: ComputeBackend>(_ shard: RankShard, weights: WeightSource, prefix: String, on backend: B) throws -> any BackendShard<B>
}

/// The largest TP degree any plan accepts (the sweep's grids are held to it too).
public let maxTPDegree = 1 << 12

extension AttentionLayout {
    /// Plans of every rank; checks legality once.
    public func shards(tp: Int) throws -> [RankShard] {
        try checkTP(tp, powerOfTwo: false)
        return try (0..<tp).map { try shard(tp: tp, rank: $0) }
    }

    func checkTP(_ tp: Int, powerOfTwo: Bool) throws {
        guard tp >= 1 else { throw HarnessError("\(variant.rawValue): TP degree must be at least 1, got \(tp)") }
        // A plan is built per rank: an absurd degree would loop for ever, not fail.
        guard tp <= maxTPDegree else {
            throw HarnessError("\(variant.rawValue): TP degree \(tp) is beyond the largest supported, \(maxTPDegree)")
        }
        if powerOfTwo && tp & (tp - 1) != 0 {
            throw HarnessError("\(variant.rawValue) cannot run at TP degree \(tp): the degree must be 1, 2, 4, 8, …")
        }
    }

    /// Heads `count` split into `parts` equal contiguous pieces; error names the rule.
    func split(heads: Range<Int>, parts: Int, part: Int, tp: Int) throws -> Range<Int> {
        guard heads.count % parts == 0 else {
            throw HarnessError("\(variant.rawValue) cannot run at TP degree \(tp): its \(heads.count) heads per group are not divisible by \(parts)")
        }
        let n = heads.count / parts
        return (heads.lowerBound + part * n)..<(heads.lowerBound + (part + 1) * n)
    }
}
