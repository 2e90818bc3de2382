import Foundation
import MLRACore

/// One rank's layer-scope work on its GPU: the rank's shard of the layer with its weights
/// in device memory (`CUDABackend`), the caches of `sequences` sequences of `context`
/// tokens (filled on the device with the CPU layer workload's seeded values: SeededInit
/// seed 0x5EED, names `KVCache.rotatedName("layer", …)`), and the sequences' input rows.
/// A step runs the whole sharded decode step on the device, the all-reduce included
/// (through host memory), and waits for it.
///
/// Cold caches as on the CPU (MLRABench's LayerStep): as many sets as MemoryFootprint
/// counts against the GPU's L2, each filled to the context, one step per set in turn.
public final class GPULayerWorkload {
    public let device: CUDADevice
    public let backend: CUDABackend
    public let layout: any AttentionLayout
    public let shard: any BackendShard<CUDABackend>
    public let attention: GPUAttention
    /// sets[set][sequence]
    public let sets: [[DeviceKVCache]]
    private var nextSet = 0
    public let dtype: StorageDType
    private let x: DeviceVector

    /// The seed of the CPU layer workload's caches and inputs (MLRABench's LayerStep).
    public static let seed: UInt64 = 0x5EED

    /// The layer's memory (MemoryFootprint's layer scope on this GPU: every cache set at the
    /// capacity its steps need, the f32 weights) and the kernel's queries, outputs and
    /// split-KV partial states (its kernel scope), predicted before anything is allocated.
    /// `appending` nil: caches of `context` tokens (`mlra forward`); `kernelRows`: the rows of
    /// the kernel's launches, when more than the sequences (a prefill's).
    public static func footprint(device: CUDADevice, layout: any AttentionLayout, shard: RankShard, dtype: StorageDType,
                                 sequences: Int, context: Int, appending: MemoryFootprint.Appending?, kernelRows: Int? = nil) throws
        -> (layer: MemoryFootprint, bytes: Int) {
        let gpu = MemoryFootprint.Backend.gpu(l2Bytes: device.l2Bytes, smCount: device.smCount)
        let layer = try MemoryFootprint(layout: layout, tp: shard.tp, rank: shard.rank, dtype: dtype, workload: .layer,
                                        context: context, sequences: sequences, backend: gpu, appending: appending,
                                        what: "the device memory of this layer")
        let kernel = try MemoryFootprint(layout: layout, tp: shard.tp, rank: shard.rank, dtype: dtype, workload: .kernel(coldCache: false),
                                         context: layer.cacheCapacity, sequences: max(sequences, kernelRows ?? 0), backend: gpu)
        return (layer, try CheckedSize.sum([layer.total, kernel.activations, kernel.partialStates], "the device memory of this layer"))
    }

    /// `appending`: the steps the run takes (warm-up and timed) and whether the cache is cold;
    /// `gemmType`: the projections' operand type (f32, or the 16-bit type of a bf16 decoder).
    public init(device: CUDADevice, layout: any AttentionLayout, shard rankShard: RankShard, weights: WeightSource,
                dtype: StorageDType, sequences: Int, context: Int, appending: MemoryFootprint.Appending,
                gemmType: StorageDType = .f32, tuning: GPUTuning = GPUTuning()) throws {
        precondition(sequences >= 1 && context >= 1)
        let (footprint, need) = try Self.footprint(device: device, layout: layout, shard: rankShard, dtype: dtype,
                                                   sequences: sequences, context: context, appending: appending)
        try device.checkFits(bytes: need * device.ranksSharing,
                             what: "this layer (\(footprint.cacheSets) cache set(s), × \(device.ranksSharing) rank(s) on this GPU)")
        self.device = device; self.layout = layout; self.dtype = dtype
        backend = try CUDABackend(device: device, gemmType: gemmType)
        shard = try layout.makeShard(rankShard, weights: weights, prefix: "", on: backend)
        let width = layout.cacheWidth(units: rankShard.units.count)
        let initializer = SeededInit(seed: Self.seed)
        sets = try (0..<footprint.cacheSets).map { set in
            try (0..<sequences).map { s in
                let cache = try DeviceKVCache(dtype: dtype, width: width, capacity: footprint.cacheCapacity)
                try cache.fillSeeded(initializer, name: KVCache.rotatedName("layer", set: set, s), toLength: context, device: device)
                return cache
            }
        }
        x = try DeviceVector(initializer.tensor("x", shape: [sequences, layout.nEmbd], kind: .embedding).data, what: "the input rows")
        // Planned for the decode step's batch: the split-KV launch fills the GPU for that batch
        // (planned for more rows, a batch of one would get a fraction of the splits).
        attention = try GPUAttention(device: device, groups: shard.groups, rowWidth: width, dtype: dtype, scale: layout.softmaxScale,
                                     maxBatch: sequences, maxLength: footprint.cacheCapacity, tuning: tuning)
        checkAttention = try GPUAttention(device: device, groups: shard.groups, rowWidth: width, dtype: dtype, scale: layout.softmaxScale,
                                          maxBatch: Self.checkTokens, maxLength: footprint.cacheCapacity, tuning: tuning)
        try backend.finish()
    }

    /// The check's kernel: planned for a prefill's rows at the timed caches' length, so it
    /// launches the split-KV kernel and its combine as the timed steps do.
    private let checkAttention: GPUAttention

    /// Sequences per step.
    public var sequences: Int { sets[0].count }

    /// One decode step of every sequence (one token each, appended to its cache), waited
    /// for; the GPU seconds of its attention launches and projections (CUDA events).
    public func step(collectives: TPCollectives) throws -> CUDABackend.StepTimes {
        let caches = sets[nextSet]
        nextSet = (nextSet + 1) % sets.count
        _ = shard.forward(x, rows: BatchRows(caches: caches, tokens: [Int](repeating: 1, count: caches.count)), on: backend,
                          attention: attention, collectives: collectives)
        return try backend.finish()
    }

    /// Tokens of the check before timing: a prefill of `checkPrefill`, then decode steps.
    public static let checkTokens = 4, checkPrefill = 2

    /// The layer's outputs [tokens, D] for inputs `x` on a fresh cache, run as a decoder runs
    /// them (MLRACore's runSequence: a prefill of `checkPrefill` tokens, then one decode step
    /// per token), on every rank of the group: what the validation holds to the reference.
    public func checkOutputs(_ x: [Float], collectives: TPCollectives) throws -> [Float] {
        let d = layout.nEmbd, tokens = x.count / d
        let cache = try DeviceKVCache(dtype: dtype, width: layout.cacheWidth(units: shard.shard.units.count), capacity: tokens)
        var out = [Float](), failure: Error?
        // Every call runs even after a failure: each issues the group's all-reduce, which the
        // other ranks wait for.
        for rows in [0..<Self.checkPrefill] + (Self.checkPrefill..<tokens).map({ $0..<($0 + 1) }) {
            let input = backend.upload(Array(x[(rows.lowerBound * d)..<(rows.upperBound * d)]))
            let y = shard.forward(input, rows: BatchRows(caches: [cache], tokens: [rows.count]), on: backend,
                                  attention: checkAttention, collectives: collectives)
            do { out += try backend.download(y) } catch {
                failure = failure ?? error
                out += [Float](repeating: .nan, count: rows.count * d)
            }
        }
        if let failure { throw failure }
        return out
    }

    public var weightBytes: Int { shard.weightBytes }
}
