/// The collectives a tensor-parallel step needs, seen from one rank of a TP
/// group. MLRACore calls them at the plan's reduction points without knowing
/// about MPI; MLRAParallel implements them over a communicator, and
/// `SingleProcess` is the identity for t = 1.
public protocol TPCollectives: AnyObject {
    var tpSize: Int { get }
    var tpRank: Int { get }
    /// Sums `values` over the TP group, in place (one all-reduce).
    func allReduceSum(_ values: inout [Float])
    /// Sums `count` f32 values at `address` over the TP group, in place: host memory, or
    /// device memory where the MPI library is CUDA-aware.
    func allReduceSum(address: UnsafeMutablePointer<Float>, count: Int)
    /// One all-reduce of `count` f32 values that `body` performs with another library
    /// (NCCL, on device memory), counted and timed as every all-reduce of the group is.
    func allReduceSum(count: Int, performedBy body: () -> Void)
    /// Concatenates each rank's `local` (rank r contributes counts[r] values) on every rank.
    func allGather(_ local: [Float], counts: [Int]) -> [Float]
    /// Whether any rank of the group passes true: an agreement, not counted as a collective
    /// of the step (a rank that failed tells the others before a collective it cannot join).
    func anyRank(_ flag: Bool) -> Bool
}

public final class SingleProcess: TPCollectives {
    public init() {}
    public var tpSize: Int { 1 }
    public var tpRank: Int { 0 }
    public func allReduceSum(_ values: inout [Float]) {}
    public func allReduceSum(address: UnsafeMutablePointer<Float>, count: Int) {}
    public func allReduceSum(count: Int, performedBy body: () -> Void) {}
    public func allGather(_ local: [Float], counts: [Int]) -> [Float] { local }
    public func anyRank(_ flag: Bool) -> Bool { flag }
}

/// Contiguous near-equal split of `count` items over `parts`: part p gets
/// [p·count/parts, (p+1)·count/parts). Used for MLP columns and vocabulary rows.
public func evenSplit(_ count: Int, parts: Int, part: Int) -> Range<Int> {
    (part * count / parts)..<((part + 1) * count / parts)
}

/// A linear layer split by input columns over the TP group (Megatron's
/// `RowParallelLinear`): each rank multiplies its slice of the input by its columns
/// of the weight, and the partial products are summed over the group. It is the one
/// place a decode step issues its all-reduces: the attention output projection and
/// the MLP's down projection.
struct RowParallelLinear<Backend: ComputeBackend> {
    /// [out, this rank's input columns]
    let weight: Backend.Matrix

    init(_ weight: Backend.Matrix) { self.weight = weight }

    /// x [rows, this rank's input columns] → the summed output [rows, out] on every
    /// rank (one all-reduce).
    func callAsFunction(_ x: Backend.Buffer, rows: Int, on backend: Backend, collectives: TPCollectives) -> Backend.Buffer {
        var out = backend.linear(x, rows: rows, weight)
        backend.allReduceSum(&out, collectives: collectives)
        return out
    }
}
