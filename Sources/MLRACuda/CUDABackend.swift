import CCuda
import Foundation
import MLRACore

/// cuBLAS, opened at run time like the driver (CCuda): MLRA_CUBLAS (a file, or a folder
/// holding libcublas.so.*) or the library path.
public enum CUBLAS {
    private static let library = RuntimeLibrary(variable: "MLRA_CUBLAS", loader: mlra_cuda_load_cublas)

    /// Opens cuBLAS; one sentence naming where it looked when it is missing. Returns the path opened.
    @discardableResult
    public static func load() throws -> String { try library.load() }

    static func check(_ status: cublasStatus_t, _ what: @autoclosure () -> String) throws {
        if status != 0 { throw HarnessError("\(what()) failed: cuBLAS status \(status)") }
    }
}

/// Device memory handed out by `CUDABackend` for a step's activations, returned to the
/// pool when the last reference goes. Every use is on the backend's one stream, so a
/// buffer reused by a later operation is only written after earlier readers ran.
public final class DeviceVector {
    public let count: Int
    /// 0 after a failed allocation (the backend has recorded the failure and launches nothing).
    public let pointer: CUdeviceptr
    private let buffer: DeviceBuffer?
    private let pool: DevicePool?

    init(count: Int, buffer: DeviceBuffer?, pool: DevicePool?) {
        self.count = count; self.buffer = buffer; self.pool = pool
        pointer = buffer?.pointer ?? 0
    }

    /// A vector holding `values` for the life of the object (weights, inputs).
    public convenience init(_ values: [Float], what: String) throws {
        let buffer = try DeviceBuffer(bytes: 4 * values.count, what: what)
        try buffer.upload(values)
        self.init(count: values.count, buffer: buffer, pool: nil)
    }

    deinit { if let buffer { pool?.give(buffer) } }
}

/// Free device buffers by size: a decode step asks for the same sizes every step, so
/// after the first nothing is allocated (cuMemAlloc would synchronise the device).
final class DevicePool {
    private var free: [Int: [DeviceBuffer]] = [:]

    func take(bytes: Int) throws -> DeviceBuffer {
        if let b = free[bytes]?.popLast() { return b }
        return try DeviceBuffer(bytes: bytes, what: "a decode step's activations")
    }

    func give(_ b: DeviceBuffer) { free[b.bytes, default: []].append(b) }
}

/// Pinned host memory for a step's host → device inputs (positions, cache tables, the
/// all-reduce's staging): each copy reads its own bytes, handed out in order and taken back
/// all at once when the stream has run (`reset()`, from `CUDABackend.finish()`). Copies from
/// pinned memory are truly asynchronous; from pageable memory the driver may wait for the
/// stream before it stages them.
final class PinnedArena {
    private var base: UnsafeMutableRawPointer?
    private var capacity = 0, used = 0

    deinit { if let base { _ = mlra_cuda.cuMemFreeHost?(base) } }

    /// `bytes` of pinned memory untouched until the next `reset()`. When the arena is full,
    /// `drain` waits for the stream, after which every earlier copy has read its bytes.
    func take(_ bytes: Int, drain: () throws -> Void) throws -> UnsafeMutableRawPointer {
        let need = (bytes + 255) / 256 * 256
        if used + need > capacity {
            try drain()
            used = 0
            if need > capacity {
                if let base { _ = mlra_cuda.cuMemFreeHost?(base); self.base = nil; capacity = 0 }
                let size = max(need, 2 * capacity, 1 << 20)
                var p: UnsafeMutableRawPointer? = nil
                try CUDADriver.check(mlra_cuda.cuMemAllocHost!(&p, size), "cuMemAllocHost(\(size) bytes)")
                base = p; capacity = size
            }
        }
        defer { used += need }
        return base! + used
    }

    func reset() { used = 0 }
}

/// How the backend's all-reduce moves device data: the row's `allreduce_path`.
public enum DeviceAllReduce {
    /// MPI_Allreduce on host memory: copied from the device into pinned host memory, summed,
    /// copied back (an MPI that is not CUDA-aware).
    case mpiHostStaged
    /// MPI_Allreduce on the device pointer (a CUDA-aware MPI), once the stream has run up to it.
    case mpiDevicePointer
    /// ncclAllReduce on the device's stream.
    case nccl(NCCLCommunicator)

    /// The path for `--collective mpi`: device pointers where MPI says it takes them
    /// (`takesDevicePointers`, from MPIX_Query_cuda_support), host memory otherwise.
    public static func mpi(takesDevicePointers: Bool?) -> DeviceAllReduce {
        takesDevicePointers == true ? .mpiDevicePointer : .mpiHostStaged
    }

    /// The row's `allreduce_path`.
    public var name: String {
        switch self {
        case .mpiHostStaged: return "mpi-host-staged"
        case .mpiDevicePointer: return "mpi-cuda-aware"
        case .nccl: return "nccl-\(NCCL.version)"
        }
    }
}

/// A weight on the device, with its shape ([out, in] for a matrix): f32 values, or for a
/// matrix multiplied in 16 bits (`CUDABackend.gemmType`) its bf16/f16 copy alone.
public struct DeviceMatrix {
    public let values: DeviceVector
    public let shape: [Int]
    /// The element type `values` holds (vectors stay f32: RMSNorm's weights).
    public let elem: StorageDType
}

/// One sequence's KV cache in device memory: the CPU KVCache's row layout and dtype,
/// `capacity` rows allocated up front (a decoder's cache does not move during a run).
public final class DeviceKVCache: SequenceCache {
    public let dtype: StorageDType
    public let width: Int
    public let capacity: Int
    /// Rows appended so far (counted on the host as appends are enqueued).
    public private(set) var length = 0
    let storage: DeviceBuffer

    public init(dtype: StorageDType, width: Int, capacity: Int) throws {
        self.dtype = dtype; self.width = width; self.capacity = capacity
        storage = try DeviceBuffer(bytes: capacity * width * dtype.bytes, what: "a KV cache of \(capacity) rows")
    }

    public var rowBytes: Int { width * dtype.bytes }
    var base: UInt64 { storage.pointer }

    /// Fills rows 0 ..< length with SeededInit's values of tensor `name` on the device (the
    /// CPU's KVCache.fillSeeded, the same bytes).
    public func fillSeeded(_ initializer: SeededInit, name: String, toLength length: Int, device: CUDADevice) throws {
        precondition(length <= capacity)
        let fill = try KernelCompiler.shared.function("fill_uniform", in: .cacheFill, arch: device.arch)
        let count = length * width
        let args = KernelArguments().add(storage.pointer).add(UInt64(count)).add(initializer.nameKey(name)).add(dtype.kernelElem)
        try fill.launch(grid: (max(1, min(device.smCount * 16, (count + 255) / 256)), 1, 1), block: 256, stream: device.stream, args)
        self.length = length
    }

    /// The address row `row` starts at, counting it as appended.
    func reserveRow(at row: Int) -> UInt64 {
        precondition(row < capacity, "cache of \(capacity) rows is full")
        length = max(length, row + 1)
        return storage.pointer + UInt64(row * rowBytes)
    }
}

/// A GPU (`CUDADevice`): device buffers, cuBLAS GEMMs, the element-wise kernels of
/// kernels/layer_ops.cu and the decode attention (`GPUAttention`), all on the device's
/// stream. The GEMMs run in `gemmType`: f32 (cuBLAS sgemm on f32 weights, no TF32), or bf16
/// or f16 on the tensor cores with f32 accumulation and output (cublasGemmEx: the weight
/// matrices stored in 16 bits, the activations rounded to 16 bits before each product), as
/// a bf16 decoder runs. Operations are enqueued and not waited for; the first failure is
/// kept and later operations are skipped, and `finish()` waits for the stream and reports it.
///
/// The all-reduce takes the path `allReduce` names: MPI over pinned host memory, MPI on
/// device pointers (a CUDA-aware MPI), or NCCL.
public final class CUDABackend: ComputeBackend {
    public let device: CUDADevice
    /// How `allReduceSum` moves the data (default: MPI through host memory).
    public var allReduce = DeviceAllReduce.mpiHostStaged
    private let pool = DevicePool()
    private let staging = PinnedArena()
    /// The decoder's element-wise kernels (CUDABackend+Model.swift).
    let modelOps: ModelKernels
    private let handle: cublasHandle_t
    private let rmsNormFn: CUDAFunction, ropeFn: CUDAFunction, copyFn: CUDAFunction, appendFn: CUDAFunction, halfFn: CUDAFunction
    /// The GEMMs' operand type: f32, bf16 or f16 (accumulation is f32 in every case).
    public let gemmType: StorageDType
    private var failure: HarnessError?
    /// Event pairs around the timed operations since the last `finish()`, by what they ran
    /// (created once, reused every step).
    private var events: [(start: CUevent, end: CUevent)] = []
    private var eventKinds: [TimedWork] = []
    private var eventsUsed = 0

    /// What the GPU seconds of a step are split by.
    public enum TimedWork: Sendable { case attention, projections }

    /// GPU seconds of the attention launches and of the projections since the last `finish()`.
    public struct StepTimes: Sendable {
        public var attention = 0.0, projections = 0.0
    }

    public init(device: CUDADevice, gemmType: StorageDType = .f32) throws {
        self.device = device
        self.gemmType = gemmType
        try CUBLAS.load()
        var h: cublasHandle_t? = nil
        try CUBLAS.check(mlra_cuda.cublasCreate!(&h), "cublasCreate")
        handle = h!
        try CUBLAS.check(mlra_cuda.cublasSetStream!(handle, device.stream), "cublasSetStream")
        // Plain f32 products (no TF32), as the CPU's; the tolerance of layer outputs assumes it.
        try CUBLAS.check(mlra_cuda.cublasSetMathMode!(handle, Int32(MLRA_CUBLAS_DEFAULT_MATH)), "cublasSetMathMode")
        let f = { (name: String) in try KernelCompiler.shared.function(name, in: .layerOps, arch: device.arch) }
        (rmsNormFn, ropeFn, copyFn, appendFn) = (try f("rms_norm_rows"), try f("rope_rows"), try f("copy_blocks"), try f("append_rows"))
        halfFn = try f("to_half")
        modelOps = try ModelKernels(device: device)
    }

    deinit {
        _ = mlra_cuda.cublasDestroy?(handle)
        for e in events { _ = mlra_cuda.cuEventDestroy?(e.start); _ = mlra_cuda.cuEventDestroy?(e.end) }
    }

    /// cuBLAS's version, e.g. 130001 (for the rows).
    public var cublasVersion: Int {
        var v: Int32 = 0
        return mlra_cuda.cublasGetVersion?(handle, &v) == 0 ? Int(v) : 0
    }

    /// Waits for the stream; throws the first failure of the enqueued operations. Returns
    /// the GPU seconds of the attention and the projections since the last call (CUDA events).
    @discardableResult
    public func finish() throws -> StepTimes {
        defer { eventsUsed = 0 }
        let synchronized = Result { try device.synchronize() }
        staging.reset()   // every copy from it has run (or the stream has failed for good)
        if let failure { self.failure = nil; throw failure }
        try synchronized.get()
        var times = StepTimes()
        for (e, kind) in zip(events.prefix(eventsUsed), eventKinds) {
            var ms: Float = 0
            try CUDADriver.check(mlra_cuda.cuEventElapsedTime!(&ms, e.start, e.end), "cuEventElapsedTime")
            switch kind {
            case .attention: times.attention += Double(ms) * 1e-3
            case .projections: times.projections += Double(ms) * 1e-3
            }
        }
        return times
    }

    /// `body`'s launches between two events of kind `kind`.
    private func timed(_ kind: TimedWork, _ body: () throws -> Void) throws {
        if eventsUsed == events.count {
            var a: CUevent? = nil, b: CUevent? = nil
            try CUDADriver.check(mlra_cuda.cuEventCreate!(&a, 0), "cuEventCreate")
            try CUDADriver.check(mlra_cuda.cuEventCreate!(&b, 0), "cuEventCreate")
            events.append((a!, b!))
            eventKinds.append(kind)
        }
        let e = events[eventsUsed]
        eventKinds[eventsUsed] = kind
        eventsUsed += 1
        try CUDADriver.check(mlra_cuda.cuEventRecord!(e.start, device.stream), "cuEventRecord")
        try body()
        try CUDADriver.check(mlra_cuda.cuEventRecord!(e.end, device.stream), "cuEventRecord")
    }

    /// Runs `body` unless an earlier operation failed, keeping its failure.
    func attempt(_ body: () throws -> Void) {
        guard failure == nil else { return }
        do { try body() } catch let e as HarnessError { failure = e } catch { failure = HarnessError("\(error)") }
    }

    func vector(_ count: Int) -> DeviceVector {
        var out: DeviceVector?
        attempt { out = DeviceVector(count: count, buffer: try pool.take(bytes: max(4 * count, 16)), pool: pool) }
        return out ?? DeviceVector(count: count, buffer: nil, pool: nil)
    }

    /// Pinned host memory for one copy of this step.
    private func pinned(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        try staging.take(bytes, drain: device.synchronize)
    }

    /// Host values copied into a step buffer through pinned memory (stream-ordered: safe to
    /// reuse across steps, and the host array may go at once).
    func stage<T>(_ values: [T]) -> DeviceVector {
        let v = vector((values.count * MemoryLayout<T>.stride + 3) / 4)
        attempt {
            try values.withUnsafeBytes { src in
                guard src.count > 0 else { return }
                let host = try pinned(src.count)
                host.copyMemory(from: src.baseAddress!, byteCount: src.count)
                try CUDADriver.check(mlra_cuda.cuMemcpyHtoDAsync!(v.pointer, host, src.count, device.stream), "cuMemcpyHtoDAsync")
            }
        }
        return v
    }

    /// `values` in a step buffer of the pool (an input that changes between steps).
    public func upload(_ values: [Float]) -> DeviceVector { stage(values) }

    /// The values of `x`, after the stream has run up to it.
    public func download(_ x: DeviceVector) throws -> [Float] {
        try finish()
        var out = [Float](repeating: 0, count: x.count)
        try out.withUnsafeMutableBytes {
            try CUDADriver.check(mlra_cuda.cuMemcpyDtoHAsync!($0.baseAddress!, x.pointer, $0.count, device.stream), "cuMemcpyDtoHAsync")
        }
        try device.synchronize()
        return out
    }

    // MARK: ComputeBackend

    public func matrix(_ t: Tensor) -> DeviceMatrix {
        var v: DeviceVector?
        let elem = t.shape.count == 2 ? gemmType : .f32
        attempt {
            let f32 = try DeviceVector(t.data, what: "a weight of shape \(t.shape)")
            if elem == .f32 { v = f32; return }
            let half = DeviceVector(count: (t.count + 1) / 2, buffer: try DeviceBuffer(bytes: 2 * t.count, what: "a weight of shape \(t.shape)"),
                                    pool: nil)
            try convertToHalf(f32.pointer, into: half.pointer, count: t.count, elem: elem)
            try device.synchronize()   // before the f32 copy is freed
            withExtendedLifetime(f32) {}
            v = half
        }
        return DeviceMatrix(values: v ?? DeviceVector(count: t.count, buffer: nil, pool: nil), shape: t.shape, elem: elem)
    }

    private func convertToHalf(_ src: CUdeviceptr, into dst: CUdeviceptr, count: Int, elem: StorageDType) throws {
        let args = KernelArguments().add(src).add(dst).add(UInt64(count)).add(elem.kernelElem)
        try halfFn.launch(grid: (max(1, min(device.smCount * 8, (count + 255) / 256)), 1, 1), block: 256, stream: device.stream, args)
    }

    public func zeros(_ count: Int) -> DeviceVector {
        let v = vector(count)
        attempt { try CUDADriver.check(mlra_cuda.cuMemsetD8Async!(v.pointer, 0, 4 * count, device.stream), "cuMemsetD8Async") }
        return v
    }

    public func linear(_ x: DeviceVector, rows: Int, _ w: DeviceMatrix) -> DeviceVector {
        let (outputs, inputs) = (w.shape[0], w.shape[1])
        precondition(x.count == rows * inputs, "linear: input has \(x.count) values, expected \(rows)×\(inputs)")
        var y = vector(rows * outputs)
        gemm(x, Strided(ld: inputs), w, Strided(ld: inputs), transposeB: true, into: &y, Strided(ld: outputs),
             m: rows, n: outputs, k: inputs, batch: 1, alpha: 1, accumulate: false)
        return y
    }

    /// Row-major C = A·op(B) is column-major Cᵀ = op(B)ᵀ·Aᵀ: cuBLAS gets B first.
    public func gemm(_ a: DeviceVector, _ sa: Strided, _ w: DeviceMatrix, _ sb: Strided, transposeB: Bool,
                     into c: inout DeviceVector, _ sc: Strided, m: Int, n: Int, k: Int, batch: Int, alpha: Float, accumulate: Bool) {
        guard m > 0, n > 0, k > 0, batch > 0 else { return }
        if w.elem != .f32 {
            return gemm16(a, sa, w, sb, transposeB: transposeB, into: c, sc, m: m, n: n, k: k, batch: batch, alpha: alpha,
                          accumulate: accumulate)
        }
        let (out, b) = (c, w.values)
        attempt {
            var al = alpha, be: Float = accumulate ? 1 : 0
            let pa = UnsafePointer<Float>(bitPattern: UInt(a.pointer + UInt64(4 * sa.offset)))
            let pb = UnsafePointer<Float>(bitPattern: UInt(b.pointer + UInt64(4 * sb.offset)))
            let pc = UnsafeMutablePointer<Float>(bitPattern: UInt(out.pointer + UInt64(4 * sc.offset)))
            let opB = Int32(transposeB ? MLRA_CUBLAS_OP_T : MLRA_CUBLAS_OP_N)
            try timed(.projections) {
                if batch == 1 {
                    try CUBLAS.check(mlra_cuda.cublasSgemm!(handle, opB, Int32(MLRA_CUBLAS_OP_N), Int32(n), Int32(m), Int32(k), &al,
                                                            pb, Int32(sb.ld), pa, Int32(sa.ld), &be, pc, Int32(sc.ld)), "cublasSgemm")
                } else {
                    try CUBLAS.check(mlra_cuda.cublasSgemmStridedBatched!(
                        handle, opB, Int32(MLRA_CUBLAS_OP_N), Int32(n), Int32(m), Int32(k), &al, pb, Int32(sb.ld), Int64(sb.step),
                        pa, Int32(sa.ld), Int64(sa.step), &be, pc, Int32(sc.ld), Int64(sc.step), Int32(batch)), "cublasSgemmStridedBatched")
                }
            }
        }
    }

    /// The same product with 16-bit operands: `a` rounded to the weight's type first, f32
    /// accumulation and output.
    private func gemm16(_ a: DeviceVector, _ sa: Strided, _ w: DeviceMatrix, _ sb: Strided, transposeB: Bool, into c: DeviceVector,
                        _ sc: Strided, m: Int, n: Int, k: Int, batch: Int, alpha: Float, accumulate: Bool) {
        let half = vector((a.count + 1) / 2)
        attempt {
            try convertToHalf(a.pointer, into: half.pointer, count: a.count, elem: w.elem)
            var al = alpha, be: Float = accumulate ? 1 : 0
            let type = Int32(w.elem == .bf16 ? MLRA_CUDA_R_16BF : MLRA_CUDA_R_16F), f32 = Int32(MLRA_CUDA_R_32F)
            let pa = UnsafeRawPointer(bitPattern: UInt(half.pointer + UInt64(2 * sa.offset)))
            let pb = UnsafeRawPointer(bitPattern: UInt(w.values.pointer + UInt64(2 * sb.offset)))
            let pc = UnsafeMutableRawPointer(bitPattern: UInt(c.pointer + UInt64(4 * sc.offset)))
            let opB = Int32(transposeB ? MLRA_CUBLAS_OP_T : MLRA_CUBLAS_OP_N), opN = Int32(MLRA_CUBLAS_OP_N)
            let (compute, algo) = (Int32(MLRA_CUBLAS_COMPUTE_32F), Int32(MLRA_CUBLAS_GEMM_DEFAULT))
            try timed(.projections) {
                if batch == 1 {
                    try CUBLAS.check(mlra_cuda.cublasGemmEx!(handle, opB, opN, Int32(n), Int32(m), Int32(k), &al, pb, type, Int32(sb.ld),
                                                             pa, type, Int32(sa.ld), &be, pc, f32, Int32(sc.ld), compute, algo), "cublasGemmEx")
                } else {
                    try CUBLAS.check(mlra_cuda.cublasGemmStridedBatchedEx!(
                        handle, opB, opN, Int32(n), Int32(m), Int32(k), &al, pb, type, Int32(sb.ld), Int64(sb.step),
                        pa, type, Int32(sa.ld), Int64(sa.step), &be, pc, f32, Int32(sc.ld), Int64(sc.step), Int32(batch), compute, algo),
                        "cublasGemmStridedBatchedEx")
                }
            }
        }
        withExtendedLifetime(half) {}   // the buffer goes back to the pool only after the product is enqueued
    }

    public func rmsNorm(_ x: inout DeviceVector, rows: Int, stride: Int, offset: Int, count: Int, weight: DeviceMatrix, scale: Float) {
        guard rows > 0 else { return }
        let args = KernelArguments().add(x.pointer).add(Int32(stride)).add(Int32(offset)).add(Int32(count)).add(weight.values.pointer).add(scale)
        attempt { try rmsNormFn.launch(grid: (rows, 1, 1), block: 256, stream: device.stream, args) }
    }

    public func rope(_ x: inout DeviceVector, rows: Int, _ columns: Strided, blocks: Int, positions: [Int], _ rope: RoPE) {
        guard rows > 0, blocks > 0 else { return }
        let pos = stage(positions.map { Int32($0) })
        let args = KernelArguments().add(x.pointer).add(Int32(columns.offset)).add(Int32(columns.ld)).add(Int32(columns.step))
            .add(Int32(rope.dim)).add(pos.pointer)
        attempt { try ropeFn.launch(grid: (rows, blocks, 1), block: 64, stream: device.stream, args) }
    }

    public func copy(_ src: DeviceVector, _ ss: Strided, into dst: inout DeviceVector, _ sd: Strided, rows: Int, blocks: Int, width: Int) {
        guard rows > 0, blocks > 0 else { return }
        let args = KernelArguments().add(src.pointer).add(Int32(ss.offset)).add(Int32(ss.ld)).add(Int32(ss.step))
            .add(dst.pointer).add(Int32(sd.offset)).add(Int32(sd.ld)).add(Int32(sd.step)).add(Int32(width))
        attempt { try copyFn.launch(grid: (rows, blocks, 1), block: min(256, (width + 31) / 32 * 32), stream: device.stream, args) }
    }

    public func append(_ rows: DeviceVector, to caches: [DeviceKVCache]) {
        guard let first = caches.first else { return }
        // Rows of one sequence go to consecutive positions, in order (as KVCache.append does).
        var next = [ObjectIdentifier: Int]()
        let targets = caches.map { c -> UInt64 in
            let row = next[ObjectIdentifier(c)] ?? c.length
            next[ObjectIdentifier(c)] = row + 1
            return c.reserveRow(at: row)
        }
        let table = stage(targets)
        let args = KernelArguments().add(rows.pointer).add(Int32(first.width)).add(table.pointer).add(first.dtype.kernelElem)
        attempt { try appendFn.launch(grid: (caches.count, 1, 1), block: 256, stream: device.stream, args) }
    }

    public func attend(_ queries: DeviceVector, caches: [DeviceKVCache], lengths: [Int], groups: [KernelGroup], scale: Float,
                       _ attention: GPUAttention) -> DeviceVector {
        let out = vector(caches.count * groups.totalOutputCount)
        let table = stage(caches.map(\.base)), lens = stage(lengths.map { Int32($0) })
        attempt {
            try timed(.attention) {
                try attention.launch(caches: table.pointer, lengths: lens.pointer, batch: caches.count, q: queries.pointer, out: out.pointer)
            }
        }
        return out
    }

    /// Every rank calls the collective, a failed one too (with zeros), so that no rank of
    /// the group waits for ever; the failure is reported at `finish()`. Whichever path
    /// runs, the communicator counts and times it as one all-reduce of `x.count` floats.
    public func allReduceSum(_ x: inout DeviceVector, collectives: TPCollectives) {
        guard collectives.tpSize > 1 else { return }
        let v = x, count = x.count
        switch allReduce {
        case .mpiHostStaged:
            var host: UnsafeMutablePointer<Float>?
            attempt {
                let p = try pinned(4 * count)
                try CUDADriver.check(mlra_cuda.cuMemcpyDtoHAsync!(p, v.pointer, 4 * count, device.stream), "cuMemcpyDtoHAsync")
                try device.synchronize()
                host = p.bindMemory(to: Float.self, capacity: count)
            }
            guard let host else { return allReduceZeros(count, collectives) }
            collectives.allReduceSum(address: host, count: count)
            attempt {
                try CUDADriver.check(mlra_cuda.cuMemcpyHtoDAsync!(v.pointer, host, 4 * count, device.stream), "cuMemcpyHtoDAsync")
            }
        case .mpiDevicePointer:
            attempt { try device.synchronize() }   // MPI reads the device memory once the products have written it
            guard failure == nil, let p = UnsafeMutablePointer<Float>(bitPattern: UInt(v.pointer)) else {
                return allReduceZeros(count, collectives)
            }
            collectives.allReduceSum(address: p, count: count)
        case .nccl(let nccl):
            // A rank that failed cannot launch NCCL's kernel, and the others' would wait for it
            // for ever: the group first agrees that every rank can (one uncounted flag).
            attempt { try device.synchronize() }   // the collective's time is its own
            guard !collectives.anyRank(failure != nil || v.pointer == 0) else {
                if failure == nil { failure = HarnessError("another rank of the TP group failed before the NCCL all-reduce") }
                return
            }
            collectives.allReduceSum(count: count) { attempt { try nccl.allReduceSum(v.pointer, count: count) } }
        }
    }

    /// This rank's part of an all-reduce it has nothing to add to (it failed): zeros.
    private func allReduceZeros(_ count: Int, _ collectives: TPCollectives) {
        var zeros = [Float](repeating: 0, count: count)
        collectives.allReduceSum(&zeros)
    }
}
