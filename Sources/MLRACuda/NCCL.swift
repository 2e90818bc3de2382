import CCuda
import Foundation
import MLRACore

/// NCCL, opened at run time like the driver (CCuda): MLRA_NCCL (a file, or a folder holding
/// libnccl.so.*) or the library path. The harness takes no MPI here: a group's unique id is
/// made by its rank 0 (`uniqueId()`) and sent to the others by the caller over MPI, as
/// nccl-tests and TensorRT-LLM do.
public enum NCCL {
    private static let library = RuntimeLibrary(variable: "MLRA_NCCL", prefix: "--collective nccl: ", loader: mlra_cuda_load_nccl)

    /// Opens NCCL; one sentence naming where it looked when it is missing. Returns the path opened.
    @discardableResult
    public static func load() throws -> String { try library.load() }

    /// The size of a unique id (ncclUniqueId).
    public static let uniqueIdBytes = Int(MLRA_NCCL_UNIQUE_ID_BYTES)

    /// The loaded library's version, e.g. "2.28.3".
    public static var version: String {
        var v: Int32 = 0
        guard mlra_cuda.ncclGetVersion?(&v) == 0 else { return "unknown" }
        // NCCL_VERSION(X, Y, Z) = X·10000 + Y·100 + Z since 2.9.
        return "\(v / 10000).\((v % 10000) / 100).\(v % 100)"
    }

    /// A new unique id for one communicator (rank 0 of the group makes it).
    public static func uniqueId() throws -> [UInt8] {
        var id = ncclUniqueId()
        try check(mlra_cuda.ncclGetUniqueId!(&id), "ncclGetUniqueId")
        return withUnsafeBytes(of: &id) { Array($0) }
    }

    static func check(_ r: ncclResult_t, _ what: @autoclosure () -> String) throws {
        guard r != 0 else { return }
        let text = mlra_cuda.ncclGetErrorString?(r).map { String(cString: $0) } ?? "error \(r)"
        throw HarnessError("\(what()) failed: NCCL \(text)")
    }
}

/// One rank's NCCL communicator over its TP group, on its device's stream.
public final class NCCLCommunicator {
    private let comm: ncclComm_t
    private let device: CUDADevice
    public let rank: Int, size: Int

    /// Joins the communicator whose unique id rank 0 made; every rank of the group calls it
    /// together (ncclCommInitRank blocks until all have). NCCL refuses two ranks on one GPU:
    /// callers check that first (`NCCLCommunicator.sharedGPU`).
    public init(uniqueId: [UInt8], rank: Int, size: Int, device: CUDADevice) throws {
        precondition(uniqueId.count == NCCL.uniqueIdBytes)
        self.rank = rank; self.size = size; self.device = device
        var c: ncclComm_t? = nil
        try NCCL.check(uniqueId.withUnsafeBytes { mlra_nccl_comm_init_rank(&c, Int32(size), $0.baseAddress!, Int32(rank)) },
                       "ncclCommInitRank (rank \(rank) of \(size))")
        comm = c!
    }

    deinit { _ = mlra_cuda.ncclCommDestroy?(comm) }

    /// Sums `count` f32 values at `pointer` over the group, in place, on the device's stream,
    /// and waits for it: a decode step needs the sum before its next product, and waiting
    /// here lets the caller time the collective apart from the rest of the step.
    public func allReduceSum(_ pointer: CUdeviceptr, count: Int) throws {
        let p = UnsafeMutableRawPointer(bitPattern: UInt(pointer))
        try NCCL.check(mlra_cuda.ncclAllReduce!(p, p, count, Int32(MLRA_NCCL_FLOAT32), Int32(MLRA_NCCL_SUM), comm, device.stream),
                       "ncclAllReduce of \(count) floats")
        try device.synchronize()
    }

    /// The first pair of ranks of a group that bound the same GPU (by UUID), which NCCL
    /// refuses ("Duplicate GPU detected"), or nil. `uuids[r]` is rank r's GPU.
    public static func sharedGPU(_ uuids: [String]) -> (first: Int, second: Int, uuid: String)? {
        for (j, u) in uuids.enumerated() {
            if let i = uuids.prefix(j).firstIndex(of: u) { return (i, j, u) }
        }
        return nil
    }
}
