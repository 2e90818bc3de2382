import CCuda
import Foundation
import MLRACore

/// One rank's kernel-scope work on its GPU: the caches of `lengths.count` sequences in
/// device memory (the CPU KVCache's row layout and dtype, filled on the device with the
/// CPU workload's exact seeded values: KernelWorkload's keys "cache.<set>.<sequence>"),
/// their queries, and the GPUAttention that decodes them. No timing policy here: the
/// bench and the self-test time `launch()` with events.
///
/// Cold-cache mode: `cacheSets` copies spanning at least 4 × the GPU's L2, rotated
/// per step, so a step never finds its cache in the L2 (as in a many-layer decoder).
public final class GPUKernelWorkload {
    public let device: CUDADevice
    public let layout: any AttentionLayout
    public let shard: RankShard
    public let dtype: StorageDType
    public let lengths: [Int]
    public let groups: [KernelGroup]
    public let width: Int
    public let cacheSets: Int
    public let attention: GPUAttention
    public let seed: UInt64

    private var caches: [DeviceBuffer] = []          // one per set: every sequence's rows, contiguous
    private var tables: [DeviceBuffer] = []          // one per set: u64 row pointer per sequence
    private let lengthsBuffer: DeviceBuffer
    public let queries: [Float]
    private let queryBuffer: DeviceBuffer
    private let outputBuffer: DeviceBuffer
    private var nextSet = 0

    public var batch: Int { lengths.count }
    public var maxLength: Int { lengths.max() ?? 0 }

    /// Device memory a workload of this shape will allocate, before anything is: the cache
    /// sets, queries, outputs and the largest split-KV partial states (the sweep skips a
    /// configuration that exceeds its GPU's free memory; the initialiser refuses it).
    public static func footprint(device: CUDADevice, layout: any AttentionLayout, shard: RankShard, dtype: StorageDType,
                                 lengths: [Int], coldCache: Bool) throws -> MemoryFootprint {
        try MemoryFootprint(layout: layout, tp: shard.tp, rank: shard.rank, dtype: dtype, workload: .kernel(coldCache: coldCache),
                            lengths: lengths, backend: .gpu(l2Bytes: device.l2Bytes, smCount: device.smCount),
                            what: "the device memory of \(lengths.count) sequence(s)")
    }

    public init(device: CUDADevice, layout: any AttentionLayout, shard: RankShard, dtype: StorageDType, lengths: [Int],
                coldCache: Bool, tuning: GPUTuning = GPUTuning(), seed: UInt64 = 0) throws {
        guard !lengths.isEmpty, lengths.allSatisfy({ $0 >= 1 }) else { throw HarnessError("every sequence needs at least one cached token") }
        self.device = device; self.layout = layout; self.shard = shard; self.dtype = dtype; self.lengths = lengths
        self.seed = seed
        groups = layout.kernelGroups(for: shard)
        width = layout.cacheWidth(units: shard.units.count)
        let maxLen = lengths.max()!

        // Refuse before allocating anything.
        let footprint = try Self.footprint(device: device, layout: layout, shard: shard, dtype: dtype, lengths: lengths, coldCache: coldCache)
        cacheSets = footprint.cacheSets
        let set = footprint.caches / cacheSets
        try device.checkFits(bytes: footprint.total, what: "this configuration (\(cacheSets) cache set(s) of \(String(format: "%.2f", Double(set) / 1e9)) GB)")

        let initializer = SeededInit(seed: seed)
        let fill = try KernelCompiler.shared.function("fill_uniform", in: .cacheFill, arch: device.arch)
        for s in 0..<cacheSets {
            let buffer = try DeviceBuffer(bytes: set, what: "cache set \(s)")
            var pointers = [UInt64]()
            var offset = 0
            for (sequence, len) in lengths.enumerated() {
                let base = buffer.pointer + CUdeviceptr(offset)
                pointers.append(base)
                let count = len * width
                let args = KernelArguments().add(base).add(UInt64(count))
                    .add(initializer.nameKey(KVCache.kernelCacheName(set: s, sequence: sequence))).add(dtype.kernelElem)
                try fill.launch(grid: (min(device.smCount * 16, (count + 255) / 256), 1, 1), block: 256, stream: device.stream, args)
                offset += count * dtype.bytes
            }
            let table = try DeviceBuffer(bytes: 8 * lengths.count, what: "the cache table")
            try table.upload(pointers)
            caches.append(buffer)
            tables.append(table)
        }
        lengthsBuffer = try DeviceBuffer(bytes: 4 * lengths.count, what: "sequence lengths")
        try lengthsBuffer.upload(lengths.map { Int32($0) })
        queries = initializer.tensor("queries", shape: [lengths.count, groups.totalQueryCount], kind: .embedding).data
        queryBuffer = try DeviceBuffer(bytes: 4 * queries.count, what: "queries")
        try queryBuffer.upload(queries)
        outputBuffer = try DeviceBuffer(bytes: 4 * lengths.count * groups.totalOutputCount, what: "outputs")
        attention = try GPUAttention(device: device, groups: groups, rowWidth: width, dtype: dtype, scale: layout.softmaxScale,
                                     maxBatch: lengths.count, maxLength: maxLen, tuning: tuning)
        try device.synchronize()
    }

    /// Another kernel over these caches (the device reference, another path), for `launch(_:set:lengths:)`.
    public func attention(tuning: GPUTuning) throws -> GPUAttention {
        try GPUAttention(device: device, groups: groups, rowWidth: width, dtype: dtype, scale: layout.softmaxScale,
                         maxBatch: batch, maxLength: maxLength, tuning: tuning)
    }

    /// What the workload must hold on the device: every cache set, the queries, the
    /// outputs and the split-KV partial states (tables and lengths are a few bytes). The
    /// bench reports the device memory actually taken against this.
    public var neededBytes: Int {
        caches.reduce(0) { $0 + $1.bytes } + queryBuffer.bytes + outputBuffer.bytes + attention.deviceBytes
    }

    /// Enqueues one decode step over the current set's caches, then moves to the next set.
    public func launch() throws {
        try attention.launch(caches: tables[nextSet], lengths: lengthsBuffer, batch: lengths.count, q: queryBuffer, out: outputBuffer)
        nextSet = (nextSet + 1) % cacheSets
    }

    /// Enqueues one step of `kernel` (another GPUAttention over the same groups, e.g. the
    /// device reference) on set `set`, with the given lengths (prefixes of the cached rows).
    public func launch(_ kernel: GPUAttention, set: Int, lengths custom: [Int]? = nil) throws {
        var lens = lengthsBuffer
        if let custom {
            lens = try DeviceBuffer(bytes: 4 * custom.count, what: "sequence lengths")
            try lens.upload(custom.map { Int32($0) })
        }
        try kernel.launch(caches: tables[set], lengths: lens, batch: lengths.count, q: queryBuffer, out: outputBuffer)
        try device.synchronize()
    }

    /// Poisons the outputs (NaN bytes), so a check sees any element the kernel did not write.
    public func poisonOutputs() throws { try outputBuffer.fill(byte: 0xFF) }

    /// The last step's outputs, [batch, groups.totalOutputCount].
    public func outputs() throws -> [Float] {
        try device.synchronize()
        return try outputBuffer.download(Float.self, count: lengths.count * groups.totalOutputCount)
    }

    /// The first `rows` rows of sequence `sequence` in set `set`, as stored (raw bytes).
    public func downloadRows(set: Int, sequence: Int, rows: Int) throws -> [UInt8] {
        let offset = lengths[..<sequence].reduce(0, +) * width * dtype.bytes
        return try caches[set].download(UInt8.self, count: rows * width * dtype.bytes, offset: offset)
    }

    /// A CPU cache holding the same first `rows` rows of sequence `sequence` of set `set`,
    /// filled on the CPU from the same seeded values (the CPU reference's input).
    public func cpuCache(set: Int, sequence: Int, rows: Int) -> KVCache {
        let cache = KVCache(dtype: dtype, width: width, capacity: rows)
        cache.fillSeeded(SeededInit(seed: seed), name: KVCache.kernelCacheName(set: set, sequence: sequence), toLength: rows)
        return cache
    }

    /// Cache bytes a step streams: Σ lengths × row width × bytes (every element once).
    public var bytesPerStep: Int { lengths.reduce(0, +) * width * dtype.bytes }
    /// Nominal FLOPs per step (method §5).
    public var flopsPerStep: Int { lengths.reduce(0, +) * shard.branchCount * layout.kernelFlopsPerTokenPerBranch }
}
