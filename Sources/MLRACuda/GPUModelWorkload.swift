import Foundation
import MLRACore

/// One rank's model-scope work on its GPU: the rank's shard of the whole decoder
/// (MLRACore's `DecoderModel` on `CUDABackend`: every layer, SwiGLU, final norm, the tied
/// vocab-parallel lm_head) with its weights in device memory, and every layer's caches of
/// `sequences` sequences of `context` tokens, filled on the device with the CPU model
/// workload's seeded values (SeededInit seed 0x5EED, names `KVCache.rotatedName("model", …)`).
/// A step runs the sharded decode step on the device; its logits are gathered on the host
/// of every rank, as the plan says, and the step is waited for.
///
/// Cold caches as on the CPU (MLRABench's ModelStep): as many sets as MemoryFootprint
/// counts against the GPU's L2, each filled to the context, one step per set in turn.
public final class GPUModelWorkload {
    public let device: CUDADevice
    public let backend: CUDABackend
    public let layout: ModelLayout
    public let model: DecoderModel<CUDABackend>
    public let attention: GPUAttention
    /// sets[set][sequence][layer]
    public let sets: [[[DeviceKVCache]]]
    private var nextSet = 0
    public let dtype: StorageDType
    /// The last step's logits [sequences, vocab_size] (gathered).
    public private(set) var lastLogits = [Float]()

    /// The seed of the CPU model workload's caches (MLRABench's ModelStep).
    public static let seed: UInt64 = 0x5EED

    /// The model's device memory (MemoryFootprint's model scope on this GPU: every layer's
    /// caches, every cache set at the capacity its steps need, the f32 weights with the
    /// whole embedding) and the kernel's queries, outputs and split-KV partial states for
    /// `kernelRows` rows per launch, predicted before anything is allocated. `appending`:
    /// the sweep's steps (nil: caches of `context` tokens, as `generate` fills them).
    public static func footprint(device: CUDADevice, layout: ModelLayout, tp: Int, rank: Int, dtype: StorageDType,
                                 sequences: Int, context: Int, kernelRows: Int, appending: MemoryFootprint.Appending?) throws
        -> (model: MemoryFootprint, bytes: Int) {
        let gpu = MemoryFootprint.Backend.gpu(l2Bytes: device.l2Bytes, smCount: device.smCount)
        let what = "the device memory of this model"
        let model = try MemoryFootprint(layout: layout.attention, tp: tp, rank: rank, dtype: dtype, workload: .model(layout),
                                        context: context, sequences: sequences, backend: gpu, appending: appending, what: what)
        let kernel = try MemoryFootprint(layout: layout.attention, tp: tp, rank: rank, dtype: dtype, workload: .kernel(coldCache: false),
                                         context: model.cacheCapacity, sequences: kernelRows, backend: gpu)
        return (model, try CheckedSize.sum([model.total, kernel.activations, kernel.partialStates], what))
    }

    /// Checks that `footprint` fits the GPU's free memory, with the other ranks sharing it.
    public static func checkFits(_ f: (model: MemoryFootprint, bytes: Int), device: CUDADevice, what: String) throws {
        try device.checkFits(bytes: f.bytes * device.ranksSharing,
                             what: "\(what) (\(f.model.breakdown), × \(device.ranksSharing) rank(s) on this GPU)")
    }

    /// `appending`: the steps the run takes (warm-up and timed) and whether the cache is cold;
    /// `gemmType`: the products' operand type (as GPULayerWorkload's).
    public init(device: CUDADevice, layout: ModelLayout, tp: Int, rank: Int, weights: WeightSource, dtype: StorageDType,
                sequences: Int, context: Int, appending: MemoryFootprint.Appending, gemmType: StorageDType = .f32,
                tuning: GPUTuning = GPUTuning()) throws {
        precondition(sequences >= 1 && context >= 1)
        let need = try Self.footprint(device: device, layout: layout, tp: tp, rank: rank, dtype: dtype, sequences: sequences,
                                      context: context, kernelRows: max(sequences, Self.checkPrompt.count), appending: appending)
        try Self.checkFits(need, device: device, what: "this model (\(need.model.cacheSets) cache set(s))")
        self.device = device; self.layout = layout; self.dtype = dtype
        let backend = try CUDABackend(device: device, gemmType: gemmType)
        let model = try DecoderModel(layout: layout, tp: tp, rank: rank, weights: weights, on: backend)
        (self.backend, self.model) = (backend, model)
        let capacity = need.model.cacheCapacity
        let initializer = SeededInit(seed: Self.seed)
        sets = try (0..<need.model.cacheSets).map { set in
            try (0..<sequences).map { s in
                let caches = try model.makeCaches(dtype: dtype, capacity: capacity, on: backend)
                for (l, c) in caches.enumerated() {
                    try c.fillSeeded(initializer, name: KVCache.rotatedName("model", set: set, s, l), toLength: context, device: device)
                }
                return caches
            }
        }
        // As in layer scope: the timed steps' plan fills the GPU for their batch; the check
        // has its own plan for the prompt's rows.
        attention = try Self.attention(model, device: device, dtype: dtype, rows: sequences, length: capacity, tuning: tuning)
        checkAttention = try Self.attention(model, device: device, dtype: dtype, rows: Self.checkPrompt.count, length: capacity,
                                            tuning: tuning)
        try backend.finish()
    }

    private let checkAttention: GPUAttention

    /// The decode attention of `model`'s layers (every layer has the same shard shape) for
    /// launches of up to `rows` rows over caches of up to `length` rows.
    public static func attention(_ model: DecoderModel<CUDABackend>, device: CUDADevice, dtype: StorageDType, rows: Int, length: Int,
                                 tuning: GPUTuning) throws -> GPUAttention {
        let shard = model.attentionShards[0]
        return try GPUAttention(device: device, groups: shard.groups, rowWidth: shard.cacheWidth, dtype: dtype,
                                scale: model.layout.attention.softmaxScale, maxBatch: rows, maxLength: length, tuning: tuning)
    }

    /// Sequences per step.
    public var sequences: Int { sets[0].count }

    /// Each step's input ids, as the CPU's ModelStep feeds them.
    public static func stepTokens(sequences: Int, vocab: Int) -> [[Int]] {
        (0..<sequences).map { [($0 * 7 + 1) % vocab] }
    }

    /// One decode step of every sequence (one token each, appended to every layer's cache),
    /// waited for; the GPU seconds of its attention launches and projections (CUDA events).
    public func step(collectives: TPCollectives) throws -> CUDABackend.StepTimes {
        let caches = sets[nextSet]
        nextSet = (nextSet + 1) % sets.count
        lastLogits = model.forward(tokens: Self.stepTokens(sequences: caches.count, vocab: layout.vocabSize), caches: caches,
                                   on: backend, attention: attention, collectives: collectives)
        return try backend.finish()
    }

    /// The check's prompt (the CPU model check's, MLRABench's Validation.model).
    public static let checkPrompt = [1, 2, 3]

    /// The check before timing, on every rank of the group: on fresh caches, the logits
    /// after `checkPrompt` (one prefill) and after one decode step of the id the group took
    /// from them, and that id (so the reference can be fed the same tokens).
    public func checkLogits(collectives: TPCollectives) throws -> (logits: [Float], next: Int) {
        let caches = try model.makeCaches(dtype: dtype, capacity: Self.checkPrompt.count + 1, on: backend)
        let first = model.forward(tokens: [Self.checkPrompt], caches: [caches], on: backend, attention: checkAttention,
                                  collectives: collectives)
        let next = argmax(first[...])
        let second = model.forward(tokens: [[next]], caches: [caches], on: backend, attention: checkAttention, collectives: collectives)
        try backend.finish()
        return (first + second, next)
    }

    public var weightBytes: Int { model.weightBytes }
}
