import MLRACore
import MLRAParallel

/// A kernel wrapper that accumulates the seconds spent inside the attention
/// kernel, so layer and model steps can report kernel time apart from the rest.
public final class TimedKernel: AttentionKernel {
    public let inner: AttentionKernel
    public private(set) var seconds = 0.0
    public init(_ inner: AttentionKernel) { self.inner = inner }
    public func run(cache: KVCache, length: Int, groups: [KernelGroup], scale: Float,
                    queries: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let t0 = MPI.wtime()
        inner.run(cache: cache, length: length, groups: groups, scale: scale, queries: queries, out: out)
        seconds += MPI.wtime() - t0
    }
    public func productMath(dtype: StorageDType, groups: [KernelGroup]) -> ProductMath {
        inner.productMath(dtype: dtype, groups: groups)
    }
}

/// Collectives that communicate nothing but return buffers of the right size:
/// a rank timed alone (isolation mode) computes its share without waiting for
/// the others; the communication is measured separately.
public final class LocalOnlyCollectives: TPCollectives {
    public let tpSize: Int, tpRank: Int
    public init(tpSize: Int, tpRank: Int) { self.tpSize = tpSize; self.tpRank = tpRank }
    public func allReduceSum(_ values: inout [Float]) {}
    public func allReduceSum(address: UnsafeMutablePointer<Float>, count: Int) {}
    public func allReduceSum(count: Int, performedBy body: () -> Void) {}
    public func allGather(_ local: [Float], counts: [Int]) -> [Float] { [Float](repeating: 0, count: counts.reduce(0, +)) }
    public func anyRank(_ flag: Bool) -> Bool { flag }
}

/// One rank's part of a decode step in one scope, built once and stepped many times.
public protocol StepWorkload: AnyObject {
    /// One decode step of this rank's share (all its sequences, all layers).
    func step(collectives: TPCollectives)
    /// Weight bytes this rank holds (0 in kernel scope).
    var weightBytes: Int { get }
    /// The collectives one step issues: all-reduce payloads (floats) and all-gather payload (floats, all ranks).
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { get }
}

/// Kernel scope: attention over the rank's caches only.
final class KernelStep: StepWorkload {
    let work: KernelWorkload
    init(_ work: KernelWorkload) { self.work = work }
    func step(collectives: TPCollectives) { work.step() }
    var weightBytes: Int { 0 }
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { ([], nil) }
}

/// Fills a cache to `length` rows with deterministic values in [-1, 1).
func fillRandom(_ cache: KVCache, length: Int, key: String) {
    cache.fillSeeded(SeededInit(seed: 0x5EED), name: key, toLength: length)
}

/// The cache sets a layer or model step rotates through, one step per set in turn (IMB
/// `-off_cache`, as KernelWorkload does): with a cold cache as many as
/// MemoryFootprint's count for the rank (the footprint the sweep's memory check
/// predicted, so what is allocated is what was judged), one set when warm. Every set
/// starts at the context and each step appends one token to the set it takes, so step k
/// of the run attends over context + ⌊k / sets⌋ + 1 rows: every set's steps do the same
/// work in turn, and the caches are allocated for the appended tokens of the most steps
/// any set takes (MemoryFootprint.cacheCapacity) and never grow while timed.
struct CacheRotation<Caches> {
    let footprint: MemoryFootprint
    /// sets[set], each filled to the context.
    let sets: [Caches]
    private(set) var next = 0

    init(footprint: MemoryFootprint, makeSet: (Int) -> Caches) {
        self.footprint = footprint
        sets = (0..<footprint.cacheSets).map(makeSet)
    }

    /// The set this step takes; the next step takes the one after.
    mutating func take() -> Caches {
        defer { next = (next + 1) % sets.count }
        return sets[next]
    }
}

/// Layer scope: projections, cache append, attention, output projection and one
/// all-reduce for the rank's sequences, over the next set of caches (`CacheRotation`).
final class LayerStep: StepWorkload {
    let shard: any AttentionShard
    private(set) var rotation: CacheRotation<[KVCache]>
    let x: [Float]
    let kernel: AttentionKernel
    /// The last step's layer output, [sequences, n_embd].
    private(set) var lastOutputs = [Float]()

    /// `appending`: the steps the run takes (warm-up and timed) and whether the cache is
    /// cold; `llcBytes`: the last-level cache the cold sets are sized from.
    init(shard: any AttentionShard, sequences: Int, context: Int, dtype: StorageDType, appending: MemoryFootprint.Appending,
         llcBytes: Int, kernel: AttentionKernel) throws {
        self.shard = shard
        self.kernel = kernel
        let footprint = try MemoryFootprint(layout: shard.layout, tp: shard.shard.tp, rank: shard.shard.rank, dtype: dtype,
                                            workload: .layer, context: context, sequences: sequences,
                                            backend: .cpu(lastLevelCacheBytes: llcBytes), appending: appending,
                                            what: "the caches of \(sequences) × \(context) tokens")
        rotation = CacheRotation(footprint: footprint) { set in
            (0..<sequences).map { s in
                let c = shard.makeCache(dtype: dtype, capacity: footprint.cacheCapacity)
                fillRandom(c, length: context, key: KVCache.rotatedName("layer", set: set, s))
                return c
            }
        }
        x = SeededInit(seed: 0x5EED).tensor("x", shape: [sequences, shard.layout.nEmbd], kind: .embedding).data
    }
    func step(collectives: TPCollectives) {
        lastOutputs = shard.decodeStep(x, caches: rotation.take(), kernel: kernel, collectives: collectives)
    }
    var weightBytes: Int { shard.weightBytes }
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { ([rotation.sets[0].count * shard.layout.nEmbd], nil) }
}

/// Model scope: every layer (attention + MLP, two all-reduces each), final norm,
/// vocab-parallel logits gathered, for the rank's sequences, over the next set of every
/// layer's caches (`CacheRotation`).
final class ModelStep: StepWorkload {
    let model: DecoderShard
    /// Each set: caches[sequence][layer].
    private(set) var rotation: CacheRotation<[[KVCache]]>
    let kernel: AttentionKernel
    /// The last step's logits, [sequences, vocab_size].
    private(set) var lastOutputs = [Float]()

    init(model: DecoderShard, sequences: Int, context: Int, dtype: StorageDType, appending: MemoryFootprint.Appending,
         llcBytes: Int, kernel: AttentionKernel) throws {
        self.model = model
        self.kernel = kernel
        let footprint = try MemoryFootprint(layout: model.layout.attention, tp: model.tp, rank: model.tpRank, dtype: dtype,
                                            workload: .model(model.layout), context: context, sequences: sequences,
                                            backend: .cpu(lastLevelCacheBytes: llcBytes), appending: appending,
                                            what: "the caches of \(sequences) × \(context) tokens")
        rotation = CacheRotation(footprint: footprint) { set in
            (0..<sequences).map { s in
                let layer = model.makeCaches(dtype: dtype, capacity: footprint.cacheCapacity)
                for (l, c) in layer.enumerated() { fillRandom(c, length: context, key: KVCache.rotatedName("model", set: set, s, l)) }
                return layer
            }
        }
    }
    func step(collectives: TPCollectives) {
        let caches = rotation.take()
        let tokens = (0..<caches.count).map { [($0 * 7 + 1) % model.layout.vocabSize] }
        lastOutputs = model.forward(tokens: tokens, caches: caches, kernel: kernel, collectives: collectives)
    }
    var weightBytes: Int { model.weightBytes }
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) {
        let sequences = rotation.sets[0].count
        return ([Int](repeating: sequences * model.layout.nEmbd, count: model.layout.allReducesPerStep), sequences * model.layout.vocabSize)
    }
}
