import CCuda
import MLRACore

/// MLRACore's AttentionKernel on the GPU, for commands that run the layer on the host
/// (`mlra forward --device cuda`): every call uploads the cache's first `length` rows
/// and the queries, runs the GPU kernel and downloads the outputs. A cross-implementation
/// check, not a benchmark (kernel-scope timing keeps the cache on the device:
/// GPUKernelWorkload).
public final class CUDAAttentionKernel: AttentionKernel {
    public let device: CUDADevice
    public let tuning: GPUTuning
    private var attention: GPUAttention?
    private var key: (groups: [KernelGroup], width: Int, dtype: StorageDType, capacity: Int)?
    private var rows: DeviceBuffer?, table: DeviceBuffer?, lengths: DeviceBuffer?, q: DeviceBuffer?, out: DeviceBuffer?
    /// The first error (AttentionKernel.run cannot throw); callers check it after the run.
    public private(set) var failure: HarnessError?

    public init(device: CUDADevice, tuning: GPUTuning = GPUTuning()) {
        self.device = device
        self.tuning = tuning
    }

    public func run(cache: KVCache, length: Int, groups: [KernelGroup], scale: Float,
                    queries: UnsafePointer<Float>, out output: UnsafeMutablePointer<Float>) {
        do {
            try runChecked(cache: cache, length: length, groups: groups, scale: scale, queries: queries, out: output)
        } catch {
            if failure == nil { failure = error as? HarnessError ?? HarnessError("\(error)") }
            for i in 0..<groups.totalOutputCount { output[i] = .nan }
        }
    }

    private func runChecked(cache: KVCache, length: Int, groups: [KernelGroup], scale: Float,
                            queries: UnsafePointer<Float>, out output: UnsafeMutablePointer<Float>) throws {
        if key == nil || key!.groups != groups || key!.width != cache.width || key!.dtype != cache.dtype || key!.capacity < length {
            let capacity = max(length, 2 * (key?.capacity ?? 0), 64)
            attention = try GPUAttention(device: device, groups: groups, rowWidth: cache.width, dtype: cache.dtype, scale: scale,
                                         maxBatch: 1, maxLength: capacity, tuning: tuning)
            rows = try DeviceBuffer(bytes: capacity * cache.rowBytes, what: "the uploaded cache")
            table = try DeviceBuffer(bytes: 8, what: "the cache table")
            try table!.upload([UInt64(rows!.pointer)])
            lengths = try DeviceBuffer(bytes: 4, what: "the sequence length")
            q = try DeviceBuffer(bytes: 4 * groups.totalQueryCount, what: "queries")
            out = try DeviceBuffer(bytes: 4 * groups.totalOutputCount, what: "outputs")
            key = (groups, cache.width, cache.dtype, capacity)
        }
        try rows!.upload(cache.storage, bytes: length * cache.rowBytes)
        try lengths!.upload([Int32(length)])
        try q!.upload(queries, bytes: 4 * groups.totalQueryCount)
        try attention!.launch(caches: table!, lengths: lengths!, batch: 1, q: q!, out: out!)
        try device.synchronize()
        let result = try out!.download(Float.self, count: groups.totalOutputCount)
        for i in 0..<result.count { output[i] = result[i] }
    }
}
