import Foundation

/// The memory one rank of a TP group will hold for a decode workload, predicted from
/// the plan before anything is allocated, by component. It is the one model behind
/// every refusal (bench, forward, generate, the GPU workload) and every skip of the
/// sweep, so that two commands given the same configuration judge it alike.
///
/// Without a named rank the footprint is that of the plan's rank that needs the most:
/// a node's ranks are judged together, so the node must hold its busiest rank's share
/// on every one of them.
public struct MemoryFootprint: Equatable, Sendable {
    /// What the rank runs (the scopes of method §5).
    public enum Workload: Sendable {
        /// Attention over the rank's caches only, with one query and output per sequence;
        /// `coldCache`: as many copies of the caches as span 4 × the backend's
        /// last-level cache, so that a step never finds its cache there.
        case kernel(coldCache: Bool)
        /// One attention layer: the rank's weights and its caches.
        case layer
        /// The sharded decoder: every layer's caches, the rank's share of all weights
        /// and the lm_head it gathers whole.
        case model(ModelLayout)
    }

    /// Layer and model scope as the sweep times them: after the context is filled,
    /// `steps` decode steps (warm-up and timed) each append one token to every cache.
    /// `coldCache`: the caches are kept in as many sets as kernel scope keeps for a set
    /// of this context (`coldCacheSets`), and each step appends to the next set, so that
    /// a step never finds its caches in the last-level cache; a set then takes only
    /// ⌈steps / sets⌉ of the appended tokens, and every set starts at the same context.
    public struct Appending: Equatable, Sendable {
        public var steps: Int
        public var coldCache: Bool
        public init(steps: Int, coldCache: Bool) { self.steps = steps; self.coldCache = coldCache }
    }

    /// Where the kernel runs, as far as memory is concerned.
    public enum Backend: Equatable, Sendable {
        case cpu(lastLevelCacheBytes: Int)
        /// A GPU: cold-cache sets span 4 × its L2, and the split-KV kernels keep
        /// partial states for up to `smCount` × `splitsPerSM` splits.
        case gpu(l2Bytes: Int, smCount: Int)

        var lastLevelCacheBytes: Int {
            switch self { case .cpu(let llc): llc; case .gpu(let l2, _): l2 }
        }
    }

    /// The GPU kernel's split count is bounded by this many per SM and by one split per
    /// `minRowsPerSplit` cached rows (GPUAttention never splits finer).
    public static let splitsPerSM = 8
    public static let minRowsPerSplit = 16

    /// KV caches: every layer's, and every cold-cache set.
    public let caches: Int
    /// Copies of the caches rotated through (1 unless the workload runs cold).
    public let cacheSets: Int
    /// Tokens each cache is allocated for (the longest sequence's context, and with
    /// `Appending` the tokens its set's steps append and one to spare): what a workload
    /// allocates its caches with, so that it holds what was predicted.
    public let cacheCapacity: Int
    /// The rank's weights (f32), in model scope with the lm_head it gathers whole.
    public let weights: Int
    /// What validating against a reference holds besides: the whole layer in f32 and
    /// in Double (the reference forward), or the whole model in one process.
    public let reference: Int
    /// Queries and outputs of the kernel, the input rows (f32 and their Double copy)
    /// and the logits kept.
    public let activations: Int
    /// The split-KV partial states of the GPU kernel (max, sum and accumulator per split).
    public let partialStates: Int

    public var total: Int { caches + weights + reference + activations + partialStates }

    /// The footprint of `sequences` sequences of `context` cached tokens each.
    /// `backend` matters to cold caches only. `reference`: a layer or model validated
    /// against a reference (the sweep); `appending`: layer and model scope's decode steps
    /// and cold cache (the sweep; without it the caches hold `context` tokens, one set);
    /// `inputRows`: rows of n_embd f32 input held with their Double copy (forward);
    /// `logitRows`: rows of logits kept (generate). `what` names the workload in the
    /// error when a size exceeds an Int.
    public init(layout: any AttentionLayout, tp: Int, rank: Int? = nil, dtype: StorageDType, workload: Workload,
                context: Int, sequences: Int, backend: Backend = .cpu(lastLevelCacheBytes: 0), reference: Bool = false,
                appending: Appending? = nil, inputRows: Int = 0, logitRows: Int = 0,
                what: String = "the memory of this workload") throws {
        try requirePositive(context, "context")
        try requirePositive(sequences, "sequences")
        if let appending, appending.steps < 0 { throw HarnessError("the appended steps must be at least 0 (got \(appending.steps))") }
        let tokens = try CheckedSize.product([context, sequences], what)
        try self.init(layout: layout, tp: tp, rank: rank, dtype: dtype, workload: workload, tokens: tokens, longest: context,
                      sequences: sequences, backend: backend, reference: reference, appending: appending, inputRows: inputRows,
                      logitRows: logitRows, what: what)
    }

    /// The footprint of sequences of unequal lengths (one entry of `lengths` each).
    public init(layout: any AttentionLayout, tp: Int, rank: Int? = nil, dtype: StorageDType, workload: Workload,
                lengths: [Int], backend: Backend = .cpu(lastLevelCacheBytes: 0), what: String = "the memory of this workload") throws {
        guard !lengths.isEmpty, lengths.allSatisfy({ $0 >= 1 }) else { throw HarnessError("every sequence needs at least one cached token") }
        try self.init(layout: layout, tp: tp, rank: rank, dtype: dtype, workload: workload, tokens: try CheckedSize.sum(lengths, what),
                      longest: lengths.max()!, sequences: lengths.count, backend: backend, reference: false, appending: nil,
                      inputRows: 0, logitRows: 0, what: what)
    }

    private init(layout: any AttentionLayout, tp: Int, rank: Int?, dtype: StorageDType, workload: Workload, tokens: Int, longest: Int,
                 sequences: Int, backend: Backend, reference: Bool, appending: Appending?, inputRows: Int, logitRows: Int,
                 what: String) throws {
        let shards = try rank.map { [try layout.shard(tp: tp, rank: $0)] } ?? layout.shards(tp: tp)
        let each = try shards.map { shard -> MemoryFootprint in
            let width = layout.cacheWidth(units: shard.units.count)
            let groups = layout.kernelGroups(for: shard)
            var caches = 0, sets = 1, capacity = longest, weights = 0, copies = 0, activations = 0, partials = 0
            /// Layer and model scope's caches: `layers` per sequence, one set at the context,
            /// or with `appending` its sets of the capacity their steps need.
            func appendedCaches(layers: Int) throws {
                let set = try CheckedSize.product([tokens, width, dtype.bytes, layers], what)
                guard let appending else { caches = set; return }
                sets = try appending.coldCache
                    ? Self.coldCacheSets(setBytes: set, lastLevelCacheBytes: backend.lastLevelCacheBytes, what: what) : 1
                capacity = try Self.appendingCapacity(context: longest, steps: appending.steps, sets: sets, what: what)
                caches = try CheckedSize.product([sets, sequences, capacity, width, dtype.bytes, layers], what)
            }
            switch workload {
            case .kernel(let cold):
                let set = try CheckedSize.product([tokens, width, dtype.bytes], what)
                sets = try cold ? Self.coldCacheSets(setBytes: set, lastLevelCacheBytes: backend.lastLevelCacheBytes, what: what) : 1
                caches = try CheckedSize.product([sets, set], what)
                activations = try CheckedSize.product([4, sequences, groups.totalQueryCount + groups.totalOutputCount], what)
                if case .gpu(_, let smCount) = backend {
                    let splits = min(smCount * Self.splitsPerSM, (longest + Self.minRowsPerSplit - 1) / Self.minRowsPerSplit)
                    partials = try CheckedSize.sum(try groups.map {
                        try CheckedSize.product([sequences, $0.heads, splits, $0.valueWidth + 2, 4], what)
                    }, what)
                }
            case .layer:
                try appendedCaches(layers: 1)
                weights = 4 * layout.weightElements(for: shard)
                if reference { copies = 12 * layout.parameters.elementCount }
            case .model(let model):
                try appendedCaches(layers: model.nLayer)
                let full = model.parameters.elementCount
                weights = 4 * full / tp + 4 * model.vocabSize * model.nEmbd
                if reference { copies = 4 * full }
                activations = try CheckedSize.product([4, model.vocabSize, logitRows], what)
            }
            activations = try CheckedSize.sum([activations, try CheckedSize.product([12, inputRows, layout.nEmbd], what)], what)
            let footprint = MemoryFootprint(caches: caches, cacheSets: sets, cacheCapacity: capacity, weights: weights, reference: copies,
                                            activations: activations, partialStates: partials)
            _ = try CheckedSize.sum(footprint.components.map(\.bytes), what)
            return footprint
        }
        self = each.max { $0.total < $1.total }!
    }

    private init(caches: Int, cacheSets: Int, cacheCapacity: Int, weights: Int, reference: Int, activations: Int, partialStates: Int) {
        self.caches = caches; self.cacheSets = cacheSets; self.cacheCapacity = cacheCapacity; self.weights = weights
        self.reference = reference; self.activations = activations; self.partialStates = partialStates
    }

    /// Cold-cache sets: as many copies of a set of `setBytes` as span 4 × the last-level
    /// cache, at least one.
    public static func coldCacheSets(setBytes: Int, lastLevelCacheBytes: Int, what: String = "the cold-cache span") throws -> Int {
        let span = try CheckedSize.sum([try CheckedSize.product([4, lastLevelCacheBytes], what), setBytes - 1], what)
        return max(1, span / max(setBytes, 1))
    }

    /// Tokens each cache of a set is allocated for when `steps` steps append one token each,
    /// taking the sets in turn: the context, the ⌈steps / sets⌉ tokens appended to the set
    /// that takes the most, and one to spare (one set: context + steps + 1, as before sets).
    public static func appendingCapacity(context: Int, steps: Int, sets: Int, what: String = "the cache capacity") throws -> Int {
        let sets = max(sets, 1)   // a count from coldCacheSets is at least 1; a caller's 0 is one set, not a trap
        return try CheckedSize.sum([context, (steps + sets - 1) / sets, 1], what)
    }

    /// The components by name, for messages.
    public var components: [(name: String, bytes: Int)] {
        [("caches", caches), ("weights", weights), ("reference copies", reference), ("activations", activations),
         ("partial states", partialStates)]
    }

    /// "caches 1.20 GiB (3 sets) + weights 12.00 MiB": the components that hold anything,
    /// each in the largest binary unit it fills.
    public var breakdown: String {
        func size(_ bytes: Int) -> String {
            let (value, unit) = bytes >= 1 << 30 ? (Double(bytes) / 1_073_741_824, "GiB")
                : bytes >= 1 << 20 ? (Double(bytes) / 1_048_576, "MiB") : (Double(bytes) / 1024, "KiB")
            return String(format: "%.2f ", value) + unit
        }
        return components.filter { $0.bytes > 0 }.map { c in
            "\(c.name) \(size(c.bytes))" + (c.name == "caches" && cacheSets > 1 ? " (\(cacheSets) sets)" : "")
        }.joined(separator: " + ")
    }
}

extension Array where Element == ParamSpec {
    /// Elements of every parameter (config sizes are bounded at load, so this cannot overflow).
    public var elementCount: Int { reduce(0) { $0 + $1.shape.reduce(1, *) } }
}
