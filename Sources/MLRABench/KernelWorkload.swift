import MLRACore

/// One rank's decode-attention work in kernel scope, ready to be timed by a caller:
/// the rank's caches for `sequences` sequences of `context` tokens, filled with
/// deterministic random data, plus their queries. `step()` runs one decode
/// step's kernel for every sequence. No timing here: the bench and the sweep
/// driver wrap `step()` in their own timing protocol.
///
/// Cold-cache mode (IMB `-off_cache`): `cacheSets` independent copies of the
/// caches, each step uses the next one, and together they span at least
/// 4 × the last-level cache, so a step never finds its cache in the LLC, as
/// in a decoder with many layers. Warm mode keeps one set.
public final class KernelWorkload {
    public let layout: any AttentionLayout
    public let shard: RankShard
    public let dtype: StorageDType
    public let context: Int
    public let sequences: Int
    public let coldCache: Bool
    public let groups: [KernelGroup]
    public let kernel: AttentionKernel
    /// Independent cache sets rotated through (1 in warm mode).
    public let cacheSets: Int
    /// What the workload holds: every cache set, the queries and the outputs.
    public let footprint: MemoryFootprint

    /// caches[set][sequence]
    private let caches: [[KVCache]]
    /// queries: [sequences, groups.totalQueryCount]; outputs: [sequences, groups.totalOutputCount]
    private var queries: [Float]
    private var outputs: [Float]
    private var nextSet = 0

    public init(layout: any AttentionLayout, shard: RankShard, dtype: StorageDType, context: Int, sequences: Int,
                coldCache: Bool, kernel: AttentionKernel, llcBytes: Int = Calibration.lastLevelCacheBytes(),
                seed: UInt64 = 0) throws {
        try requirePositive(context, "context")
        try requirePositive(sequences, "sequences")
        self.layout = layout; self.shard = shard; self.dtype = dtype
        self.context = context; self.sequences = sequences; self.coldCache = coldCache; self.kernel = kernel
        groups = layout.kernelGroups(for: shard)
        let width = layout.cacheWidth(units: shard.units.count)
        footprint = try Self.footprint(layout: layout, tp: shard.tp, rank: shard.rank, dtype: dtype, context: context,
                                       sequences: sequences, coldCache: coldCache, llcBytes: llcBytes)
        cacheSets = footprint.cacheSets

        let init_ = SeededInit(seed: seed)
        caches = (0..<cacheSets).map { set in
            (0..<sequences).map { sequence in
                let cache = KVCache(dtype: dtype, width: width, capacity: context)
                cache.fillSeeded(init_, name: KVCache.kernelCacheName(set: set, sequence: sequence), toLength: context)
                return cache
            }
        }
        queries = init_.tensor("queries", shape: [sequences, groups.totalQueryCount], kind: .embedding).data
        outputs = [Float](repeating: 0, count: sequences * groups.totalOutputCount)
    }

    /// One decode step: the kernel over every sequence's cache of the current set; then the next set.
    public func step() {
        let set = caches[nextSet]
        let (qn, on) = (groups.totalQueryCount, groups.totalOutputCount)
        queries.withUnsafeBufferPointer { q in
            outputs.withUnsafeMutableBufferPointer { o in
                for s in 0..<sequences {
                    kernel.run(cache: set[s], length: context, groups: groups, scale: layout.softmaxScale,
                               queries: q.baseAddress! + s * qn, out: o.baseAddress! + s * on)
                }
            }
        }
        nextSet = (nextSet + 1) % cacheSets
    }

    /// The last step's outputs, [sequences, groups.totalOutputCount].
    public var lastOutputs: [Float] { outputs }

    /// Cache bytes the kernel streams per step on this rank: L × row width × bytes × sequences
    /// (equals `DecodeCost.kernelBytes` for the busiest rank).
    public var bytesPerStep: Int { context * sequences * layout.cacheWidth(units: shard.units.count) * dtype.bytes }
    /// Nominal kernel FLOPs per step on this rank (method §5; equals `DecodeCost.kernelFlops` for the busiest rank).
    public var flopsPerStep: Int { context * sequences * shard.branchCount * layout.kernelFlopsPerTokenPerBranch }
    /// Bytes the workload keeps resident: all cache sets, queries and outputs (kernel scope has no weights).
    public var residentBytes: Int { footprint.total }

    /// What a workload of this shape will hold, known before anything is allocated: bench
    /// refuses and the sweep skips on it (sizes come from flags and calibration files, so
    /// they are checked: a huge value is an error, not a trap).
    public static func footprint(layout: any AttentionLayout, tp: Int, rank: Int?, dtype: StorageDType, context: Int, sequences: Int,
                                 coldCache: Bool, llcBytes: Int) throws -> MemoryFootprint {
        try MemoryFootprint(layout: layout, tp: tp, rank: rank, dtype: dtype, workload: .kernel(coldCache: coldCache), context: context,
                            sequences: sequences, backend: .cpu(lastLevelCacheBytes: llcBytes),
                            what: "the cache set of \(sequences) × \(context) tokens")
    }

    /// The rank of a plan that streams the most bytes (then computes the most FLOPs).
    public static func busiestRank(_ layout: any AttentionLayout, tp: Int) throws -> Int {
        let shards = try layout.shards(tp: tp)
        let load = shards.map { (layout.cacheWidth(units: $0.units.count), $0.branchCount) }
        return load.indices.max { load[$0] < load[$1] }!
    }
}
