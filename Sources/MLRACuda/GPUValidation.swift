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

    /// The checks a kernel passes before it is timed (bench and sweep alike): against the
    /// CPU plain kernel, then (`full`) against the device reference at the full lengths.
    /// Throws naming the first check that failed and its first mismatch.
    public static func beforeTiming(_ w: GPUKernelWorkload, full: Bool) throws -> [Result] {
        var checks = [try againstCPU(w)]
        if full { checks.append(try againstDeviceReference(w)) }
        if let failed = checks.first(where: { !$0.passed }) {
            throw HarnessError("validation failed (\(failed.what)): \(failed.violation!)")
        }
        return checks
    }

    /// Rows a CPU check covers: several tiles and splits, short enough for the CPU plain kernel.
    public static let cpuCheckRows = 1031

    /// The timed kernel (or `kernel`) over the first `rows` tokens of every sequence of
    /// cache set 0, against MLRACore's PlainAttentionKernel on CPU caches filled from the
    /// same seeded values; the device cache's bytes are compared with the CPU cache's first.
    public static func againstCPU(_ w: GPUKernelWorkload, rows: Int = cpuCheckRows, kernel: GPUAttention? = nil) throws -> Result {
        let lens = w.lengths.map { min($0, rows) }
        let k = kernel ?? w.attention
        let what = "GPU \(k.summary) vs CPU plain kernel, first \(lens.max()!) rows"
        let reference: [Double]
        do { reference = try cpuReference(w, lengths: lens) } catch let e as HarnessError {
            return Result(what: what, maxError: .infinity, violation: e.message)
        }
        return compare(what, try outputs(w, k, lengths: lens), reference, Tolerance.gpuKernelAgreement(cache: w.dtype))
    }

    /// `kernel`'s outputs over the first `lengths` rows of set 0, outputs poisoned first.
    public static func outputs(_ w: GPUKernelWorkload, _ kernel: GPUAttention, lengths: [Int]) throws -> [Float] {
        try w.poisonOutputs()
        try w.launch(kernel, set: 0, lengths: lengths)
        return try w.outputs()
    }

    /// The CPU plain kernel's outputs over the same first `lengths` rows of set 0; throws
    /// when the device cache's bytes differ from the CPU cache's.
    public static func cpuReference(_ w: GPUKernelWorkload, lengths: [Int]) throws -> [Double] {
        var reference = [Double]()
        let qn = w.groups.totalQueryCount, on = w.groups.totalOutputCount
        for (s, len) in lengths.enumerated() {
            let cache = w.cpuCache(set: 0, sequence: s, rows: len)
            let device = try w.downloadRows(set: 0, sequence: s, rows: len)
            let host = Array(UnsafeRawBufferPointer(start: cache.storage, count: len * cache.rowBytes))
            if device != host {
                let i = zip(device, host).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(device.count, host.count)
                throw HarnessError("the device cache of sequence \(s) differs from the CPU cache at byte \(i)")
            }
            var out = [Float](repeating: 0, count: on)
            w.queries.withUnsafeBufferPointer { q in
                PlainAttentionKernel().run(cache: cache, length: len, groups: w.groups, scale: w.layout.softmaxScale,
                                           queries: q.baseAddress! + s * qn, out: &out)
            }
            reference += out.map(Double.init)
        }
        return reference
    }

    /// The timed kernel against the device reference (decode_plain) at the full lengths,
    /// on cache set 0: the long-context splits and their combine.
    public static func againstDeviceReference(_ w: GPUKernelWorkload) throws -> Result {
        let ref = try w.attention(tuning: GPUTuning(path: .plain))
        try w.poisonOutputs()
        try w.launch(ref, set: 0)
        let reference = try w.outputs().map(Double.init)
        try w.poisonOutputs()
        try w.launch(w.attention, set: 0)
        let fast = try w.outputs()
        return compare("GPU \(w.attention.summary) vs GPU plain kernel, full length \(w.maxLength)", fast, reference,
                       Tolerance.gpuKernelAgreement(cache: w.dtype))
    }

    public static func compare(_ what: String, _ x: [Float], _ ref: [Double], _ tol: Tolerance) -> Result {
        let v = tol.firstViolation(x, ref)
        return Result(what: what, maxError: v?.maxError ?? Tolerance.maxError(x, ref),
                      violation: v.map { "\($0) with atol \(tol.atol), rtol \(tol.rtol)" })
    }
}
