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
}

/// Collectives that communicate nothing but return buffers of the right size:
/// a rank timed alone (isolation mode) computes its share without waiting for
/// the others; the communication is measured separately.
public final class LocalOnlyCollectives: TPCollectives {
    public let tpSize: Int, tpRank: Int
    public init(tpSize: Int, tpRank: Int) { self.tpSize = tpSize; self.tpRank = tpRank }
    public func allReduceSum(_ values: inout [Float]) {}
    public func allGather(_ local: [Float], counts: [Int]) -> [Float] { [Float](repeating: 0, count: counts.reduce(0, +)) }
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

/// Layer scope: projections, cache append, attention, output projection and one
/// all-reduce for the rank's sequences.
final class LayerStep: StepWorkload {
    let shard: any AttentionShard
    let caches: [KVCache]
    let x: [Float]
    let kernel: AttentionKernel
    init(shard: any AttentionShard, sequences: Int, context: Int, capacity: Int, dtype: StorageDType, kernel: AttentionKernel) {
        self.shard = shard
        self.kernel = kernel
        caches = (0..<sequences).map { s in
            let c = shard.makeCache(dtype: dtype, capacity: capacity)
            fillRandom(c, length: context, key: "layer.\(s)")
            return c
        }
        x = SeededInit(seed: 0x5EED).tensor("x", shape: [sequences, shard.layout.nEmbd], kind: .embedding).data
    }
    func step(collectives: TPCollectives) {
        _ = shard.decodeStep(x, caches: caches, kernel: kernel, collectives: collectives)
    }
    var weightBytes: Int { shard.weightBytes }
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { ([caches.count * shard.layout.nEmbd], nil) }
}

/// Model scope: every layer (attention + MLP, two all-reduces each), final norm,
/// vocab-parallel logits gathered, for the rank's sequences.
final class ModelStep: StepWorkload {
    let model: DecoderShard
    let caches: [[KVCache]]
    let kernel: AttentionKernel
    init(model: DecoderShard, sequences: Int, context: Int, capacity: Int, dtype: StorageDType, kernel: AttentionKernel) {
        self.model = model
        self.kernel = kernel
        caches = (0..<sequences).map { s in
            let layer = model.makeCaches(dtype: dtype, capacity: capacity)
            for (l, c) in layer.enumerated() { fillRandom(c, length: context, key: "model.\(s).\(l)") }
            return layer
        }
    }
    func step(collectives: TPCollectives) {
        let tokens = (0..<caches.count).map { [($0 * 7 + 1) % model.layout.vocabSize] }
        _ = model.forward(tokens: tokens, caches: caches, kernel: kernel, collectives: collectives)
    }
    var weightBytes: Int { model.weightBytes }
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) {
        ([Int](repeating: caches.count * model.layout.nEmbd, count: model.layout.allReducesPerStep), caches.count * model.layout.vocabSize)
    }
}
