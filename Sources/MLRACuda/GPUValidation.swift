import MLRACore

/// Checks of the GPU kernels before anything is timed (STYLE: validate before timing),
/// each with the tolerance of Tolerance.gpuKernelAgreement. Outputs are poisoned (NaN)
/// first, so an element the kernel never wrote fails.
public enum GPUValidation {
    public struct Result: Sendable {
        public let what: String
        public let maxError: Double
        public let violation: String?
        public var passed: Bool { violation == nil }
    }

    /// Rows a CPU check covers: several tiles and splits, short enough for the CPU plain kernel.
    public static let cpuCheckRows = 1031

    /// The timed kernel over the first `rows` tokens of every sequence of cache set 0,
    /// against MLRACore's PlainAttentionKernel on CPU caches filled from the same seeded
    /// values; the device cache's bytes are compared with the CPU cache's first.
    public static func againstCPU(_ w: GPUKernelWorkload, rows: Int = cpuCheckRows, kernel: GPUAttention? = nil) throws -> Result {
        let lens = w.lengths.map { min($0, rows) }
        let tol = Tolerance.gpuKernelAgreement(cache: w.dtype)
        let what = "GPU \(kernel?.summary ?? w.attention.summary) vs CPU plain kernel, first \(lens.max()!) rows"
        try w.poisonOutputs()
        try w.launch(kernel ?? w.attention, set: 0, lengths: lens)
        let gpu = try w.outputs()
        var reference = [Double]()
        let qn = w.groups.totalQueryCount, on = w.groups.totalOutputCount
        for (s, len) in lens.enumerated() {
            let cache = w.cpuCache(set: 0, sequence: s, rows: len)
            let device = try w.downloadRows(set: 0, sequence: s, rows: len)
            let host = Array(UnsafeRawBufferPointer(start: cache.storage, count: len * cache.rowBytes))
            if device != host {
                let i = zip(device, host).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(device.count, host.count)
                return Result(what: what, maxError: .infinity,
                              violation: "the device cache of sequence \(s) differs from the CPU cache at byte \(i)")
            }
            var out = [Float](repeating: 0, count: on)
            w.queries.withUnsafeBufferPointer { q in
                PlainAttentionKernel().run(cache: cache, length: len, groups: w.groups, scale: w.layout.softmaxScale,
                                           queries: q.baseAddress! + s * qn, out: &out)
            }
            reference += out.map(Double.init)
        }
        return compare(what, gpu, reference, tol)
    }

    /// The timed kernel against the device reference (decode_plain) at the full lengths,
    /// on cache set 0: the long-context splits and their combine.
    public static func againstDeviceReference(_ w: GPUKernelWorkload) throws -> Result {
        let ref = try GPUAttention(device: w.device, groups: w.groups, rowWidth: w.width, dtype: w.dtype,
                                   scale: w.layout.softmaxScale, maxBatch: w.batch, maxLength: w.maxLength,
                                   tuning: GPUTuning(path: .plain))
        try w.poisonOutputs()
        try w.launch(ref, set: 0)
        let reference = try w.outputs().map(Double.init)
        try w.poisonOutputs()
        try w.launch(w.attention, set: 0)
        let fast = try w.outputs()
        return compare("GPU \(w.attention.summary) vs GPU plain kernel, full length \(w.maxLength)", fast, reference,
                       Tolerance.gpuKernelAgreement(cache: w.dtype))
    }

    static func compare(_ what: String, _ x: [Float], _ ref: [Double], _ tol: Tolerance) -> Result {
        let v = tol.firstViolation(x, ref)
        return Result(what: what, maxError: v?.maxError ?? Tolerance.maxError(x, ref),
                      violation: v.map { "\($0) with atol \(tol.atol), rtol \(tol.rtol)" })
    }
}
