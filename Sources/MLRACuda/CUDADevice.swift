import CCuda
import Foundation
import MLRACore

/// The CUDA driver, opened at run time (CCuda). Every failure becomes one
/// HarnessError sentence naming what is missing or wrong.
public enum CUDADriver {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var initialised = false

    /// Opens libcuda.so.1 and initialises the driver; throws when there is no driver or no GPU.
    /// `flag` begins the message: what asked for the GPU (the sweep's is --devices cuda).
    public static func load(flag: String = "--device cuda") throws {
        lock.lock(); defer { lock.unlock() }
        if initialised { return }
        var err = [CChar](repeating: 0, count: 1024)
        guard mlra_cuda_load_driver(&err, err.count) == 0 else {
            throw HarnessError("\(flag): " + String(cString: err))
        }
        let r = mlra_cuda.cuInit!(0)
        if r == Int32(MLRA_CUDA_ERROR_NO_DEVICE) {
            throw HarnessError("\(flag): the NVIDIA driver sees no GPU (cuInit: CUDA_ERROR_NO_DEVICE; check CUDA_VISIBLE_DEVICES)")
        }
        try check(r, "\(flag): cuInit")
        var count: Int32 = 0
        try check(mlra_cuda.cuDeviceGetCount!(&count), "cuDeviceGetCount")
        guard count > 0 else { throw HarnessError("\(flag): the NVIDIA driver sees no GPU (check CUDA_VISIBLE_DEVICES)") }
        _ = mlra_cuda_load_nvml()
        initialised = true
    }

    public static var deviceCount: Int {
        var n: Int32 = 0
        return mlra_cuda.cuDeviceGetCount?(&n) == 0 ? Int(n) : 0
    }

    /// CUDA version the driver supports, e.g. "13.0".
    public static var cudaVersion: String {
        var v: Int32 = 0
        guard mlra_cuda.cuDriverGetVersion?(&v) == 0 else { return "unknown" }
        return "\(v / 1000).\((v % 1000) / 10)"
    }

    /// The kernel driver's version (NVML), e.g. "580.65.06"; the CUDA version when NVML is absent.
    public static var driverVersion: String {
        var buf = [CChar](repeating: 0, count: 96)
        if let f = mlra_cuda.nvmlSystemGetDriverVersion, f(&buf, UInt32(buf.count)) == 0 { return String(cString: buf) }
        return "cuda-\(cudaVersion)"
    }

    static func describe(_ r: CUresult) -> String {
        var name: UnsafePointer<CChar>? = nil, text: UnsafePointer<CChar>? = nil
        _ = mlra_cuda.cuGetErrorName?(r, &name)
        _ = mlra_cuda.cuGetErrorString?(r, &text)
        return "\(name.map { String(cString: $0) } ?? "CUDA error \(r)")" + (text.map { " (\(String(cString: $0)))" } ?? "")
    }

    /// Waits for every stream of the current context, the legacy one included.
    static func synchronizeContext() throws {
        try check(mlra_cuda.cuCtxSynchronize!(), "cuCtxSynchronize")
    }

    @inline(__always)
    static func check(_ r: CUresult, _ what: @autoclosure () -> String) throws {
        if r != 0 { throw HarnessError("\(what()) failed: \(describe(r))") }
    }
}

/// One GPU, bound as the current device of this process (its primary context).
/// A rank binds device `localRank mod visible GPUs` (several ranks may share one).
public final class CUDADevice: @unchecked Sendable {
    public let ordinal: Int
    public let handle: CUdevice
    public let name: String
    public let uuid: String
    public let pciBusId: String
    public let computeCapability: (major: Int, minor: Int)
    public let smCount: Int
    public let l2Bytes: Int
    public let sharedPerBlockOptin: Int
    public let sharedPerSM: Int
    public let totalMemoryBytes: Int
    /// Ranks of this node bound to this GPU (1 when it is not shared).
    public let ranksSharing: Int
    public let stream: CUstream

    /// Binds GPU `localRank mod count`; `localSize` ranks on this node share the visible GPUs.
    /// `flag` begins the error messages (CUDADriver.load).
    public init(localRank: Int, localSize: Int, flag: String = "--device cuda") throws {
        try CUDADriver.load(flag: flag)
        let count = CUDADriver.deviceCount
        ordinal = localRank % count
        ranksSharing = (localSize - ordinal + count - 1) / count
        var dev: CUdevice = 0
        try CUDADriver.check(mlra_cuda.cuDeviceGet!(&dev, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        handle = dev
        var buf = [CChar](repeating: 0, count: 256)
        try CUDADriver.check(mlra_cuda.cuDeviceGetName!(&buf, Int32(buf.count), dev), "cuDeviceGetName")
        name = String(cString: buf)
        var u = CUuuid()
        try CUDADriver.check(mlra_cuda.cuDeviceGetUuid!(&u, dev), "cuDeviceGetUuid")
        uuid = Self.formatUUID(u)
        try CUDADriver.check(mlra_cuda.cuDeviceGetPCIBusId!(&buf, Int32(buf.count), dev), "cuDeviceGetPCIBusId")
        pciBusId = String(cString: buf)
        func attr(_ a: Int32) throws -> Int {
            var v: Int32 = 0
            try CUDADriver.check(mlra_cuda.cuDeviceGetAttribute!(&v, a, dev), "cuDeviceGetAttribute(\(a))")
            return Int(v)
        }
        computeCapability = (try attr(Int32(MLRA_CU_ATTR_CC_MAJOR)), try attr(Int32(MLRA_CU_ATTR_CC_MINOR)))
        smCount = try attr(Int32(MLRA_CU_ATTR_SM_COUNT))
        l2Bytes = try attr(Int32(MLRA_CU_ATTR_L2_CACHE_SIZE))
        sharedPerBlockOptin = try attr(Int32(MLRA_CU_ATTR_MAX_SHARED_PER_BLOCK_OPTIN))
        sharedPerSM = try attr(Int32(MLRA_CU_ATTR_MAX_SHARED_PER_SM))
        var total = 0
        try CUDADriver.check(mlra_cuda.cuDeviceTotalMem!(&total, dev), "cuDeviceTotalMem")
        totalMemoryBytes = total
        guard computeCapability.major >= 8 else {
            throw HarnessError("\(flag): \(name) has compute capability \(computeCapability.major).\(computeCapability.minor); "
                               + "the kernels need 8.0 or newer (bf16 mma.sync)")
        }
        var ctx: CUcontext? = nil
        try CUDADriver.check(mlra_cuda.cuDevicePrimaryCtxRetain!(&ctx, dev), "cuDevicePrimaryCtxRetain")
        try CUDADriver.check(mlra_cuda.cuCtxSetCurrent!(ctx), "cuCtxSetCurrent")
        var s: CUstream? = nil
        try CUDADriver.check(mlra_cuda.cuStreamCreate!(&s, UInt32(MLRA_CU_STREAM_NON_BLOCKING)), "cuStreamCreate")
        stream = s!
    }

    /// Binds this process's GPU for commands run without MPI (bench, calibrate, selftest):
    /// the node-local rank and size from the launcher's environment, Open MPI's, then
    /// Slurm's, else 0 of 1. (Under MPI: NodeTopology's localRank and localSize.)
    public static func bindFromEnvironment() throws -> CUDADevice {
        let env = ProcessInfo.processInfo.environment
        let rank = Int(env["OMPI_COMM_WORLD_LOCAL_RANK"] ?? env["SLURM_LOCALID"] ?? "") ?? 0
        let size = Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["SLURM_NTASKS_PER_NODE"] ?? "") ?? 1
        return try CUDADevice(localRank: rank, localSize: max(size, rank + 1))
    }

    /// "sm_90a" on Hopper (wgmma and setmaxnreg need the a-variant), else "sm_XY".
    public var arch: String {
        let (major, minor) = computeCapability
        return major == 9 && minor == 0 ? "sm_90a" : "sm_\(major)\(minor)"
    }

    /// Current SM and memory clocks in MHz (NVML), nil when NVML is absent.
    public func clocksMHz() -> (sm: Int, memory: Int)? {
        guard let getHandle = mlra_cuda.nvmlDeviceGetHandleByPciBusId, let getClock = mlra_cuda.nvmlDeviceGetClockInfo else {
            return nil
        }
        var h: nvmlDevice_t? = nil
        guard getHandle(pciBusId, &h) == 0 else { return nil }
        var sm: UInt32 = 0, mem: UInt32 = 0
        guard getClock(h, Int32(MLRA_NVML_CLOCK_SM), &sm) == 0,
              getClock(h, Int32(MLRA_NVML_CLOCK_MEM), &mem) == 0 else { return nil }
        return (Int(sm), Int(mem))
    }

    public func freeMemoryBytes() throws -> Int {
        var free = 0, total = 0
        try CUDADriver.check(mlra_cuda.cuMemGetInfo!(&free, &total), "cuMemGetInfo")
        return free
    }

    /// Refuses, before allocating, a working set that the GPU cannot hold.
    public func checkFits(bytes: Int, what: String) throws {
        let free = try freeMemoryBytes()
        guard bytes <= free else {
            throw HarnessError(String(format: "%@ needs %.2f GB of device memory; %@ has %.2f GB free", what,
                                      Double(bytes) / 1e9, name, Double(free) / 1e9))
        }
    }

    public func synchronize() throws {
        try CUDADriver.check(mlra_cuda.cuStreamSynchronize!(stream), "cuStreamSynchronize")
    }

    /// The columns that name the GPU a CSV row ran on (bench's --device cuda CSV and the
    /// sweep's; docs/csv-schema.md), and this device's values for them, clocks as read
    /// before timing (0 when NVML is absent).
    public static let csvColumns = ["gpu_name", "gpu_uuid", "gpu_pci_bus_id", "gpu_driver",
                                    "gpu_sm_clock_mhz", "gpu_mem_clock_mhz", "gpu_ranks_sharing"]

    public func csvFields(clocks: (sm: Int, memory: Int)?) -> [String] {
        [name, uuid, pciBusId, CUDADriver.driverVersion, "\(clocks?.sm ?? 0)", "\(clocks?.memory ?? 0)", "\(ranksSharing)"]
    }

    /// One line for the output: which GPU this rank drives, and whether it is shared.
    public var summary: String {
        "\(name) (GPU \(ordinal), \(pciBusId), \(uuid), sm \(computeCapability.major)\(computeCapability.minor), "
            + "\(smCount) SMs, driver \(CUDADriver.driverVersion))"
            + (ranksSharing > 1 ? "; shared by \(ranksSharing) ranks of this node: timings include their contention" : "")
    }

    static func formatUUID(_ u: CUuuid) -> String {
        let bytes = withUnsafeBytes(of: u.bytes) { Array($0) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { r in
            String(hex[hex.index(hex.startIndex, offsetBy: r.lowerBound)..<hex.index(hex.startIndex, offsetBy: r.upperBound)])
        }
        return "GPU-" + parts.joined(separator: "-")
    }
}

/// Device memory, freed with its owner.
///
/// Its host copies (`upload`, `download`, `fill`) are complete and ordered against every
/// stream of the context when they return. They are synchronous copies on the legacy
/// stream, which the device's non-blocking stream does not wait for, and a synchronous
/// copy from pageable memory may return before its DMA has landed (CUDA's "API
/// synchronization behavior"). Without the context synchronisation around them, a kernel
/// launched right after an upload could read the buffer before the copy arrived, and a
/// download could read a result before the kernel writing it ran.
public final class DeviceBuffer {
    public let pointer: CUdeviceptr
    public let bytes: Int

    public init(bytes: Int, what: @autoclosure () -> String) throws {
        var p: CUdeviceptr = 0
        let r = mlra_cuda.cuMemAlloc!(&p, max(bytes, 16))
        if r == Int32(MLRA_CUDA_ERROR_OUT_OF_MEMORY) {
            throw HarnessError(String(format: "out of device memory allocating %.2f GB for %@", Double(bytes) / 1e9, what()))
        }
        try CUDADriver.check(r, "cuMemAlloc(\(bytes) bytes) for \(what())")
        pointer = p
        self.bytes = bytes
    }

    deinit { _ = mlra_cuda.cuMemFree?(pointer) }

    public func upload(_ src: UnsafeRawPointer, bytes n: Int, offset: Int = 0) throws {
        precondition(offset + n <= bytes)
        try CUDADriver.synchronizeContext()   // no kernel still reads what this overwrites
        try CUDADriver.check(mlra_cuda.cuMemcpyHtoD!(pointer + CUdeviceptr(offset), src, n), "cuMemcpyHtoD")
        try CUDADriver.synchronizeContext()   // the DMA has landed before any stream reads it
    }

    public func upload<T>(_ values: [T]) throws {
        try values.withUnsafeBytes { try upload($0.baseAddress!, bytes: $0.count) }
    }

    public func download<T>(_ type: T.Type, count: Int, offset: Int = 0) throws -> [T] {
        var out = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
        try CUDADriver.synchronizeContext()   // every kernel writing this buffer has run
        try out.withUnsafeMutableBytes {
            try CUDADriver.check(mlra_cuda.cuMemcpyDtoH!($0.baseAddress!, pointer + CUdeviceptr(offset), $0.count), "cuMemcpyDtoH")
        }
        return out
    }

    public func fill(byte: UInt8) throws {
        try CUDADriver.synchronizeContext()
        try CUDADriver.check(mlra_cuda.cuMemsetD8!(pointer, byte, bytes), "cuMemsetD8")
        try CUDADriver.synchronizeContext()
    }
}

/// Kernel parameters in the form cuLaunchKernel takes: an array of pointers to values.
public final class KernelArguments {
    private var storage: [UnsafeMutableRawPointer] = []
    public private(set) var pointers: [UnsafeMutableRawPointer?] = []

    public init() {}
    deinit { storage.forEach { $0.deallocate() } }

    @discardableResult
    public func add<T>(_ value: T) -> KernelArguments {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(MemoryLayout<T>.size, 8), alignment: 8)
        p.storeBytes(of: value, as: T.self)
        storage.append(p)
        pointers.append(p)
        return self
    }
}

/// A loaded kernel function.
public struct CUDAFunction {
    public let function: CUfunction
    public let name: String

    public func setMaxDynamicShared(_ bytes: Int) throws {
        try CUDADriver.check(mlra_cuda.cuFuncSetAttribute!(function, Int32(MLRA_CU_FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES),
                                                           Int32(bytes)), "cuFuncSetAttribute(\(name), \(bytes) B shared)")
    }

    public func launch(grid: (Int, Int, Int), block: Int, shared: Int = 0, stream: CUstream, _ args: KernelArguments) throws {
        var ptrs = args.pointers
        let r = ptrs.withUnsafeMutableBufferPointer { p in
            mlra_cuda.cuLaunchKernel!(function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1,
                                      UInt32(shared), stream, p.baseAddress, nil)
        }
        try CUDADriver.check(r, "launching \(name) (grid \(grid.0)×\(grid.1)×\(grid.2), \(block) threads, \(shared) B shared)")
    }

    /// Launches as a programmatic dependent of the kernel before it on `stream` (Hopper's PDL:
    /// it may start while that one runs and waits for it with griddepcontrol.wait; the kernel
    /// must do so before reading what that one writes). `dependent: false` is `launch`.
    public func launch(grid: (Int, Int, Int), block: Int, shared: Int = 0, stream: CUstream, dependent: Bool,
                       _ args: KernelArguments) throws {
        guard dependent else { return try launch(grid: grid, block: block, shared: shared, stream: stream, args) }
        var ptrs = args.pointers
        let r = ptrs.withUnsafeMutableBufferPointer { p in
            mlra_cuda_launch_dependent(function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), UInt32(shared), stream,
                                       p.baseAddress)
        }
        try CUDADriver.check(r, "launching \(name) as a programmatic dependent (grid \(grid.0)×\(grid.1)×\(grid.2), \(block) threads, "
                                + "\(shared) B shared)")
    }
}

/// CUDA events around work on a stream: elapsed GPU time.
public final class EventTimer {
    private let start: CUevent, end: CUevent
    private let stream: CUstream

    public init(stream: CUstream) throws {
        var a: CUevent? = nil, b: CUevent? = nil
        try CUDADriver.check(mlra_cuda.cuEventCreate!(&a, 0), "cuEventCreate")
        try CUDADriver.check(mlra_cuda.cuEventCreate!(&b, 0), "cuEventCreate")
        start = a!; end = b!
        self.stream = stream
    }

    /// Seconds the GPU spent between the two events around `body`'s launches.
    public func time(_ body: () throws -> Void) throws -> Double {
        try CUDADriver.check(mlra_cuda.cuEventRecord!(start, stream), "cuEventRecord")
        try body()
        try CUDADriver.check(mlra_cuda.cuEventRecord!(end, stream), "cuEventRecord")
        try CUDADriver.check(mlra_cuda.cuEventSynchronize!(end), "cuEventSynchronize (a kernel failed)")
        var ms: Float = 0
        try CUDADriver.check(mlra_cuda.cuEventElapsedTime!(&ms, start, end), "cuEventElapsedTime")
        return Double(ms) * 1e-3
    }
}

/// A CUDA graph captured from a stream's launches, replayed with one launch.
public final class CapturedGraph {
    private let exec: CUgraphExec
    private let graph: CUgraph
    private let stream: CUstream

    public init(stream: CUstream, _ body: () throws -> Void) throws {
        self.stream = stream
        try CUDADriver.check(mlra_cuda.cuStreamBeginCapture!(stream, Int32(MLRA_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)),
                             "cuStreamBeginCapture")
        do { try body() } catch {
            var g: CUgraph? = nil
            _ = mlra_cuda.cuStreamEndCapture!(stream, &g)
            throw error
        }
        var g: CUgraph? = nil
        try CUDADriver.check(mlra_cuda.cuStreamEndCapture!(stream, &g), "cuStreamEndCapture")
        graph = g!
        var e: CUgraphExec? = nil
        try CUDADriver.check(mlra_cuda.cuGraphInstantiateWithFlags!(&e, graph, 0), "cuGraphInstantiate")
        exec = e!
    }

    deinit { _ = mlra_cuda.cuGraphExecDestroy?(exec); _ = mlra_cuda.cuGraphDestroy?(graph) }

    public func replay() throws { try CUDADriver.check(mlra_cuda.cuGraphLaunch!(exec, stream), "cuGraphLaunch") }
}
