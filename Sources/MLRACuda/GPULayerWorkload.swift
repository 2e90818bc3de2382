import Foundation
import MLRACore

/// One rank's layer-scope work on its GPU: the rank's shard of the layer with its weights
/// in device memory (`CUDABackend`), the caches of `sequences` sequences of `context`
/// tokens (filled on the device with the CPU layer workload's seeded values: SeededInit
/// seed 0x5EED, names "layer.<sequence>"), and the sequences' input rows. A step runs
/// the whole sharded decode step on the device, the all-reduce included (through host
/// memory), and waits for it.
public final class GPULayerWorkload {
    public let device: CUDADevice
    public let backend: CUDABackend
    public let layout: any AttentionLayout
    public let shard: any BackendShard<CUDABackend>
    public let attention: GPUAttention
    public let caches: [DeviceKVCache]
    public let dtype: StorageDType
    private let x: DeviceVector

    /// The seed and names of the CPU layer workload's caches and inputs (MLRABench's LayerStep).
    public static let seed: UInt64 = 0x5EED
    public static func cacheName(sequence: Int) -> String { "layer.\(sequence)" }

    /// Device memory the workload holds, predicted before allocating: the layer's caches at
    /// `capacity` rows and its f32 weights (MemoryFootprint's layer scope), and the kernel's
    /// queries, outputs and split-KV partial states (its kernel scope).
    public static func neededBytes(device: CUDADevice, layout: any AttentionLayout, shard: RankShard, dtype: StorageDType,
                                   sequences: Int, capacity: Int) throws -> Int {
        let layer = try MemoryFootprint(layout: layout, tp: shard.tp, rank: shard.rank, dtype: dtype, workload: .layer,
                                        context: capacity, sequences: sequences, what: "the device memory of this layer")
        let kernel = try MemoryFootprint(layout: layout, tp: shard.tp, rank: shard.rank, dtype: dtype, workload: .kernel(coldCache: false),
                                         context: capacity, sequences: sequences,
                                         backend: .gpu(l2Bytes: device.l2Bytes, smCount: device.smCount))
        return try CheckedSize.sum([layer.total, kernel.activations, kernel.partialStates], "the device memory of this layer")
    }

    public init(device: CUDADevice, layout: any AttentionLayout, shard rankShard: RankShard, weights: WeightSource,
                dtype: StorageDType, sequences: Int, context: Int, capacity: Int, tuning: GPUTuning = GPUTuning()) throws {
        precondition(sequences >= 1 && context >= 1 && capacity > context)
        let need = try Self.neededBytes(device: device, layout: layout, shard: rankShard, dtype: dtype, sequences: sequences,
                                        capacity: capacity)
        try device.checkFits(bytes: need * device.ranksSharing, what: "this layer (× \(device.ranksSharing) rank(s) on this GPU)")
        self.device = device; self.layout = layout; self.dtype = dtype
        backend = try CUDABackend(device: device)
        shard = try layout.makeShard(rankShard, weights: weights, prefix: "", on: backend)
        let width = layout.cacheWidth(units: rankShard.units.count)
        let initializer = SeededInit(seed: Self.seed)
        caches = try (0..<sequences).map { s in
            let cache = try DeviceKVCache(dtype: dtype, width: width, capacity: capacity)
            try cache.fillSeeded(initializer, name: Self.cacheName(sequence: s), toLength: context, device: device)
            return cache
        }
        x = try DeviceVector(initializer.tensor("x", shape: [sequences, layout.nEmbd], kind: .embedding).data, what: "the input rows")
        attention = try GPUAttention(device: device, groups: shard.groups, rowWidth: width, dtype: dtype, scale: layout.softmaxScale,
                                     maxBatch: max(sequences, Self.checkTokens), maxLength: capacity, tuning: tuning)
        try backend.finish()
    }

    /// One decode step of every sequence (one token each, appended to its cache), waited
    /// for; the GPU seconds of its attention launches and projections (CUDA events).
    public func step(collectives: TPCollectives) throws -> CUDABackend.StepTimes {
        let rows = BatchRows(caches: caches, tokens: [Int](repeating: 1, count: caches.count))
        _ = shard.forward(x, rows: rows, on: backend, attention: attention, collectives: collectives)
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
            let y = shard.forward(input, rows: BatchRows(caches: [cache], tokens: [rows.count]), on: backend, attention: attention,
                                  collectives: collectives)
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
