import CMPI
import Foundation
import MLRACore

/// A checked, counted wrapper over an MPI communicator. Every collective of a
/// decode step goes through the few functions here, so all communication can be
/// found with one search and counted in tests. Errors come back as
/// `MPI_ERRORS_RETURN` codes and are reported with `MPI_Error_string`.
public final class Communicator: TPCollectives {
    public let comm: MPI_Comm
    public let rank: Int
    public let size: Int

    /// Collectives issued through this communicator (tests count them).
    public private(set) var allReduceCount = 0
    public private(set) var allGatherCount = 0
    public private(set) var allReduceBytes = 0
    /// Seconds spent inside all-reduce / all-gather so far (timers take differences).
    /// With `waitApart`, the collective alone: the wait for the slowest rank is in `waitSeconds`.
    public private(set) var collectiveSeconds = 0.0
    /// Seconds spent in the timed barrier before each collective (only with `waitApart`):
    /// the imbalance, the time this rank waited for the group's slowest rank.
    public private(set) var waitSeconds = 0.0
    /// When set, every all-reduce and all-gather is preceded by a barrier, timed on its
    /// own: without it a collective's time includes the wait for the last rank to arrive,
    /// and a slow rank looks like a slow network. The barrier is MPI_Barrier, never
    /// counted as a collective (`allReduceCount` stays the plan's count).
    public var waitApart = false
    /// Self-test (--inject-rank-delay-us): seconds this rank sleeps before each
    /// collective, so a test can see the delay land in the wait, not in the collective.
    public var injectedDelay = 0.0

    public var tpSize: Int { size }
    public var tpRank: Int { rank }

    /// Optional because Open MPI's handles are pointers (imported as optionals) and MPICH's
    /// are integers; one spelling compiles against both (`var out = mlra_comm_null()`).
    init(_ comm: MPI_Comm?) {
        self.comm = comm!
        var r: Int32 = 0, s: Int32 = 0
        MPI.check(MPI_Comm_rank(self.comm, &r), "MPI_Comm_rank")
        MPI.check(MPI_Comm_size(self.comm, &s), "MPI_Comm_size")
        rank = Int(r); size = Int(s)
        MPI.check(MPI_Comm_set_errhandler(self.comm, mlra_errors_return()), "MPI_Comm_set_errhandler")
    }

    /// Ranks with equal `color` form a new communicator, ordered by `key`.
    public func split(color: Int, key: Int) -> Communicator {
        var out = mlra_comm_null()
        MPI.check(MPI_Comm_split(comm, Int32(color), Int32(key), &out), "MPI_Comm_split")
        return Communicator(out)
    }

    /// The ranks of this rank's node (MPI_Comm_split_type shared memory), ordered by rank.
    /// Free it with `free()` when done.
    public func splitNode() -> Communicator {
        var node = mlra_comm_null()
        MPI.check(MPI_Comm_split_type(comm, mlra_comm_type_shared(), Int32(rank), mlra_info_null(), &node), "MPI_Comm_split_type")
        return Communicator(node)
    }

    /// Releases a communicator made by `split` or `splitNode` (never the world).
    public func free() {
        MPI.check(mlra_comm_free(comm), "MPI_Comm_free")
    }

    /// This rank's node named by the lowest rank on it, and this rank's place among its ranks.
    public func nodeLeader() -> (leader: Int, localRank: Int) {
        let node = splitNode()
        defer { node.free() }
        // Ordered by key = rank: node-local rank 0 holds the node's lowest rank.
        return (Int(node.allGatherDoubles([Double(rank)])[0]), node.rank)
    }

    public func barrier() { MPI.check(MPI_Barrier(comm), "MPI_Barrier") }

    /// A barrier that sleeps while it waits (MPI_Ibarrier + MPI_Test every
    /// `pollMicroseconds`), so idle ranks leave the cores to the rank being
    /// timed on an oversubscribed node instead of spinning in MPI_Barrier.
    public func quietBarrier(pollMicroseconds: UInt32 = 200) {
        var request = mlra_request_null()
        MPI.check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier")
        var done: Int32 = 0
        while true {
            MPI.check(MPI_Test(&request, &done, mlra_status_ignore()), "MPI_Test")
            if done != 0 { return }
            usleep(pollMicroseconds)
        }
    }

    /// Before a collective: the injected delay, then (with `waitApart`) the timed barrier.
    func arrive() {
        if injectedDelay > 0 { usleep(UInt32(min(injectedDelay, 10) * 1e6)) }
        guard waitApart else { return }
        let t0 = MPI_Wtime()
        barrier()
        waitSeconds += MPI_Wtime() - t0
    }

    public func allReduceSum(_ values: inout [Float]) {
        // An empty array has no base address; MPI takes a count of 0 with none.
        values.withUnsafeMutableBufferPointer { p in allReduceSum(count: p.count) { sumInPlace(p.baseAddress, count: p.count) } }
    }

    public func allReduceSum(address: UnsafeMutablePointer<Float>, count: Int) {
        allReduceSum(count: count) { sumInPlace(address, count: count) }
    }

    private func sumInPlace(_ address: UnsafeMutablePointer<Float>?, count: Int) {
        MPI.check(MPI_Allreduce(mlra_in_place(), address, Int32(count), mlra_float(), mlra_op_sum(), comm), "MPI_Allreduce")
    }

    /// The one place an all-reduce is counted and timed, whichever library performs it.
    public func allReduceSum(count: Int, performedBy body: () -> Void) {
        if size == 1 { return }
        arrive()
        let t0 = MPI_Wtime()
        body()
        collectiveSeconds += MPI_Wtime() - t0
        allReduceCount += 1
        allReduceBytes += count * 4
    }

    /// Whether this MPI library takes device pointers (CUDA-aware), asked once at run time:
    /// true or false from Open MPI's `MPIX_Query_cuda_support()`, nil where the library
    /// has no such query (MPICH).
    public static let takesDevicePointers: Bool? = {
        switch mlra_mpi_cuda_support() {
        case 1: return true
        case 0: return false
        default: return nil
        }
    }()

    public func allGather(_ local: [Float], counts: [Int]) -> [Float] {
        precondition(counts.count == size && counts[rank] == local.count)
        if size == 1 { return local }
        arrive()
        let t0 = MPI_Wtime()
        var out = [Float](repeating: 0, count: counts.reduce(0, +))
        var displs = [Int32](), c32 = counts.map { Int32($0) }
        var acc: Int32 = 0
        for c in c32 { displs.append(acc); acc += c }
        local.withUnsafeBufferPointer { l in
            out.withUnsafeMutableBufferPointer { o in
                MPI.check(MPI_Allgatherv(l.baseAddress, Int32(local.count), mlra_float(), o.baseAddress, &c32, &displs,
                                         mlra_float(), comm), "MPI_Allgatherv")
            }
        }
        collectiveSeconds += MPI_Wtime() - t0
        allGatherCount += 1
        return out
    }

    public func anyRank(_ flag: Bool) -> Bool { allReduce(flag ? 1 : 0, max: true) > 0 }

    /// Reductions of a scalar over the communicator (timing and error agreement).
    public func allReduce(_ value: Double, max: Bool) -> Double {
        var v = value, out = 0.0
        MPI.check(MPI_Allreduce(&v, &out, 1, mlra_double(), max ? mlra_op_max() : mlra_op_sum(), comm), "MPI_Allreduce")
        return out
    }

    public func allReduceMax(_ values: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: values.count)
        var v = values
        MPI.check(MPI_Allreduce(&v, &out, Int32(values.count), mlra_double(), mlra_op_max(), comm), "MPI_Allreduce")
        return out
    }

    /// Every rank's `values` (same count on all ranks), concatenated in rank order.
    public func allGatherDoubles(_ values: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: values.count * size)
        var v = values
        MPI.check(MPI_Allgather(&v, Int32(values.count), mlra_double(), &out, Int32(values.count), mlra_double(), comm), "MPI_Allgather")
        return out
    }

    /// Every rank's string, in rank order, on every rank.
    public func allGather(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        let lengths = allGatherDoubles([Double(bytes.count)]).map { Int32($0) }
        var displs = [Int32](), acc: Int32 = 0
        for n in lengths { displs.append(acc); acc += n }
        var out = [UInt8](repeating: 0, count: Int(acc))
        var counts = lengths
        bytes.withUnsafeBufferPointer { b in
            out.withUnsafeMutableBufferPointer { o in
                MPI.check(MPI_Allgatherv(b.baseAddress, Int32(bytes.count), mlra_byte(), o.baseAddress, &counts, &displs,
                                         mlra_byte(), comm), "MPI_Allgatherv")
            }
        }
        return (0..<size).map { String(decoding: out[Int(displs[$0])..<Int(displs[$0] + lengths[$0])], as: UTF8.self) }
    }

    /// Rank `root`'s string on every rank.
    public func broadcast(_ text: String, root: Int = 0) -> String {
        var n = Int64(text.utf8.count)
        MPI.check(MPI_Bcast(&n, 1, mlra_int64(), Int32(root), comm), "MPI_Bcast")
        var bytes = rank == root ? Array(text.utf8) : [UInt8](repeating: 0, count: Int(n))
        MPI.check(MPI_Bcast(&bytes, Int32(n), mlra_byte(), Int32(root), comm), "MPI_Bcast")
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Process-wide MPI state: initialisation, the world communicator, aborting.
public enum MPI {
    nonisolated(unsafe) private static var worldComm: Communicator?

    /// Initialises MPI once (safe to call when launched without mpirun: a singleton world).
    public static func world() -> Communicator {
        if let w = worldComm { return w }
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var argc: Int32 = 0
            _ = MPI_Init(&argc, nil)
        }
        let w = Communicator(mlra_comm_world())
        worldComm = w
        return w
    }

    public static func finalize() {
        guard worldComm != nil else { return }
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
        worldComm = nil
    }

    /// Ends the whole job: one line naming the rank and the cause, then MPI_Abort,
    /// so no other rank is left blocked in a collective.
    public static func abort(_ message: String, code: Int32 = 1) -> Never {
        let rank = worldComm.map { " (rank \($0.rank))" } ?? ""
        FileHandle.standardError.write(Data("mlra: error\(rank): \(message)\n".utf8))
        if worldComm != nil { MPI_Abort(mlra_comm_world(), code) }
        exit(code)
    }

    /// A failed MPI call ends the job with the library's own explanation.
    static func check(_ code: Int32, _ call: String, file: StaticString = #fileID, line: UInt = #line) {
        guard code != mlra_success() else { return }
        var buffer = [CChar](repeating: 0, count: Int(mlra_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        abort("\(call) failed at \(file):\(line): \(text)")
    }

    public static func wtime() -> Double { MPI_Wtime() }
    public static func wtick() -> Double { MPI_Wtick() }

    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(mlra_max_library_version_string()) + 1)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let s = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // "Open MPI v4.1.4, package: …" → "Open MPI v4.1.4"; "MPICH Version:\t4.0.2\nMPICH Release date: …"
        // → "MPICH 4.0.2": the name and version, one space between words, no CSV quoting needed.
        let first = s.split(separator: "\n").first.map { String($0.split(separator: ",").first ?? $0) } ?? s
        return first.replacingOccurrences(of: "Version:", with: "").split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    public static var processorName: String {
        var buffer = [CChar](repeating: 0, count: Int(mlra_max_processor_name()) + 1)
        var length: Int32 = 0
        MPI_Get_processor_name(&buffer, &length)
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
