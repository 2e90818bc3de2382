/// Where a shard's activations, weights and caches live and its operations run: the CPU
/// (host arrays, OpenBLAS, the tiled kernel: `CPUBackend`) or a GPU (device memory,
/// cuBLAS, the decode kernels: MLRACuda's `CUDABackend`). Each variant's decode plan
/// (`LatentAttentionShard`, `GroupedAttentionShard`) is written once against it.
///
/// Buffers hold f32 values, row-major. An operation names the columns it reads or writes
/// by a `Strided` family of blocks, so a plan never copies to reshape. A backend that
/// enqueues work (a GPU) reports a failure when its caller synchronises, as CUDA reports
/// asynchronous errors, so the plans carry no error handling.
public protocol ComputeBackend: AnyObject {
    /// f32 values where this backend computes ([Float] on the CPU).
    associatedtype Buffer
    /// A weight matrix [out, in] or vector, held for the shard's life.
    associatedtype Matrix
    /// One sequence's KV cache on this backend.
    associatedtype Cache: SequenceCache
    /// What runs the decode attention kernel (the CPU's `AttentionKernel`, a GPU's launch plan).
    associatedtype Attention

    /// Holds a weight loaded on the host (once, when the shard is built).
    func matrix(_ t: Tensor) -> Matrix
    /// `count` zeros.
    func zeros(_ count: Int) -> Buffer
    /// Y[rows, out] = X[rows, in] · Wᵀ.
    func linear(_ x: Buffer, rows: Int, _ w: Matrix) -> Buffer
    /// For j < batch: C_j[m, n] = α · A_j[m, k] · B_j (+ C_j when accumulating), where B_j is
    /// [k, n], or its transpose stored [n, k] when `transposeB`. Each operand is a strided
    /// family of matrices (matrix j at offset + j·step, rows `ld` apart).
    func gemm(_ a: Buffer, _ sa: Strided, _ b: Matrix, _ sb: Strided, transposeB: Bool,
              into c: inout Buffer, _ sc: Strided, m: Int, n: Int, k: Int, batch: Int, alpha: Float, accumulate: Bool)
    /// RMSNorm (method §2) of `count` columns at `offset` of each of `rows` rows (`stride`
    /// apart), in place, times `weight` and `scale`.
    func rmsNorm(_ x: inout Buffer, rows: Int, stride: Int, offset: Int, count: Int, weight: Matrix, scale: Float)
    /// RoPE at row i's position of the `blocks` blocks of `rope.dim` columns per row, in place.
    func rope(_ x: inout Buffer, rows: Int, _ columns: Strided, blocks: Int, positions: [Int], _ rope: RoPE)
    /// Copies `blocks` blocks of `width` columns per row, for `rows` rows.
    func copy(_ src: Buffer, _ ss: Strided, into dst: inout Buffer, _ sd: Strided, rows: Int, blocks: Int, width: Int)
    /// Appends row i of `rows` ([caches.count, cache width]) to caches[i], converting to its dtype.
    func append(_ rows: Buffer, to caches: [Cache])
    /// Row r's queries attend to the first lengths[r] rows of caches[r]: queries
    /// [R, Σ heads·DK] → outputs [R, Σ heads·DV] (the AttentionKernel contract).
    func attend(_ queries: Buffer, caches: [Cache], lengths: [Int], groups: [KernelGroup], scale: Float,
                _ attention: Attention) -> Buffer
    /// Sums `x` over the TP group, in place (one all-reduce).
    func allReduceSum(_ x: inout Buffer, collectives: TPCollectives)

    // The rest of a decoder (`DecoderModel`): caches, embeddings, the residual stream, the
    // MLP, and the two places its plan crosses to the host (the input ids, the logits).

    /// A cache of `capacity` rows of `width` values, stored as `dtype`.
    func makeCache(dtype: StorageDType, width: Int, capacity: Int) throws -> Cache
    /// Host values as a buffer (the inputs of a step).
    func buffer(_ values: [Float]) -> Buffer
    /// Rows `ids` of `table` ([V, width]): the embeddings [ids.count, width].
    func embed(_ table: Matrix, ids: [Int], width: Int) -> Buffer
    /// x[i] += y[i] for i < count (the residual stream).
    func add(_ x: inout Buffer, _ y: Buffer, count: Int)
    /// gate[i] ← silu(gate[i]) · up[i] for i < count (SwiGLU).
    func swiGLU(_ gate: inout Buffer, _ up: Buffer, count: Int)
    /// The first `count` values of `x` on the host, once everything before has run (the
    /// logits, which the plan gathers on the host).
    func host(_ x: Buffer, count: Int) -> [Float]
}

/// A family of blocks or matrices inside a row-major buffer: block j of row i starts at
/// offset + i·ld + j·step.
public struct Strided: Sendable {
    public var offset: Int, ld: Int, step: Int
    public init(offset: Int = 0, ld: Int, step: Int = 0) { self.offset = offset; self.ld = ld; self.step = step }
}

/// What a plan needs of a cache: how many rows it holds (positions are taken from it).
public protocol SequenceCache: AnyObject {
    var length: Int { get }
}

extension KVCache: SequenceCache {}

/// The rows of a batch laid out for the kernel: each row's cache and position.
public struct BatchRows<Cache: SequenceCache> {
    public let caches: [Cache]
    public let positions: [Int]
    public var count: Int { positions.count }
    /// Row r attends to the first lengths[r] rows of its cache (its causal prefix).
    public var lengths: [Int] { positions.map { $0 + 1 } }

    /// `tokens[s]` new tokens of the sequence whose cache is caches[s], in order; the
    /// positions are taken before the rows are appended.
    public init(caches sequences: [Cache], tokens: [Int]) {
        precondition(sequences.count == tokens.count)
        var caches = [Cache](), positions = [Int]()
        for (cache, n) in zip(sequences, tokens) {
            for t in 0..<n { caches.append(cache); positions.append(cache.length + t) }
        }
        self.caches = caches
        self.positions = positions
    }
}

/// The host: [Float] buffers, OpenBLAS, host KVCaches and an `AttentionKernel`. Stateless.
public final class CPUBackend: ComputeBackend {
    public init() {}

    public func matrix(_ t: Tensor) -> Tensor { t }
    public func zeros(_ count: Int) -> [Float] { [Float](repeating: 0, count: count) }
    public func linear(_ x: [Float], rows: Int, _ w: Tensor) -> [Float] { BLAS.linear(x, rows: rows, w) }

    public func gemm(_ a: [Float], _ sa: Strided, _ b: Tensor, _ sb: Strided, transposeB: Bool,
                     into c: inout [Float], _ sc: Strided, m: Int, n: Int, k: Int, batch: Int, alpha: Float, accumulate: Bool) {
        a.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    for j in 0..<batch {
                        let (x, w, y) = (ap.baseAddress! + sa.offset + j * sa.step, bp.baseAddress! + sb.offset + j * sb.step,
                                         cp.baseAddress! + sc.offset + j * sc.step)
                        if transposeB {
                            BLAS.gemmNT(x, w, y, m: m, n: n, k: k, lda: sa.ld, ldb: sb.ld, ldc: sc.ld, alpha: alpha, accumulate: accumulate)
                        } else {
                            BLAS.gemmNN(x, w, y, m: m, n: n, k: k, lda: sa.ld, ldb: sb.ld, ldc: sc.ld, alpha: alpha, accumulate: accumulate)
                        }
                    }
                }
            }
        }
    }

    public func rmsNorm(_ x: inout [Float], rows: Int, stride: Int, offset: Int, count: Int, weight: Tensor, scale: Float) {
        x.withUnsafeMutableBufferPointer { p in
            weight.data.withUnsafeBufferPointer { w in
                for i in 0..<rows { MLRACore.rmsNorm(p.baseAddress! + i * stride + offset, count: count, weight: w.baseAddress!, scale: scale) }
            }
        }
    }

    public func rope(_ x: inout [Float], rows: Int, _ columns: Strided, blocks: Int, positions: [Int], _ rope: RoPE) {
        x.withUnsafeMutableBufferPointer { p in
            for i in 0..<rows {
                for j in 0..<blocks { rope.apply(p.baseAddress! + columns.offset + i * columns.ld + j * columns.step, position: positions[i]) }
            }
        }
    }

    public func copy(_ src: [Float], _ ss: Strided, into dst: inout [Float], _ sd: Strided, rows: Int, blocks: Int, width: Int) {
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                for i in 0..<rows {
                    for j in 0..<blocks {
                        (d.baseAddress! + sd.offset + i * sd.ld + j * sd.step)
                            .update(from: s.baseAddress! + ss.offset + i * ss.ld + j * ss.step, count: width)
                    }
                }
            }
        }
    }

    public func append(_ rows: [Float], to caches: [KVCache]) {
        rows.withUnsafeBufferPointer { p in
            for (i, cache) in caches.enumerated() { cache.append(p.baseAddress! + i * cache.width) }
        }
    }

    public func attend(_ queries: [Float], caches: [KVCache], lengths: [Int], groups: [KernelGroup], scale: Float,
                       _ kernel: AttentionKernel) -> [Float] {
        let (qStride, oStride) = (groups.totalQueryCount, groups.totalOutputCount)
        var out = zeros(caches.count * oStride)
        queries.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { o in
                for r in caches.indices {
                    kernel.run(cache: caches[r], length: lengths[r], groups: groups, scale: scale,
                               queries: q.baseAddress! + r * qStride, out: o.baseAddress! + r * oStride)
                }
            }
        }
        return out
    }

    public func allReduceSum(_ x: inout [Float], collectives: TPCollectives) { collectives.allReduceSum(&x) }

    public func makeCache(dtype: StorageDType, width: Int, capacity: Int) -> KVCache {
        KVCache(dtype: dtype, width: width, capacity: capacity)
    }

    public func buffer(_ values: [Float]) -> [Float] { values }

    public func embed(_ table: Tensor, ids: [Int], width: Int) -> [Float] {
        var x = [Float]()
        x.reserveCapacity(ids.count * width)
        for t in ids { x += table.data[(t * width)..<((t + 1) * width)] }
        return x
    }

    public func add(_ x: inout [Float], _ y: [Float], count: Int) {
        for i in 0..<count { x[i] += y[i] }
    }

    public func swiGLU(_ gate: inout [Float], _ up: [Float], count: Int) {
        for i in 0..<count { let g = gate[i]; gate[i] = g / (1 + expf(-g)) * up[i] }
    }

    public func host(_ x: [Float], count: Int) -> [Float] { count == x.count ? x : Array(x.prefix(count)) }
}

#if canImport(Glibc)
import Glibc
#endif
