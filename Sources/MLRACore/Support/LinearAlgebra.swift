import CBLAS

/// Thin, shape-checked wrappers over OpenBLAS. Matrices are row-major.
public enum BLAS {
    /// C[m, n] = A[m, k] · B[n, k]ᵀ (+ C when accumulate): x·Wᵀ for W stored [out, in].
    /// One row is a matrix-vector product: sgemm would pack (copy) all of B first,
    /// which for a decode step's weights costs more than the product itself.
    @inline(__always)
    public static func gemmNT(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                              m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil,
                              alpha: Float = 1, accumulate: Bool = false) {
        if m == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb ?? k), a, 1,
                        accumulate ? 1 : 0, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda ?? k), b, Int32(ldb ?? k), accumulate ? 1 : 0, c, Int32(ldc ?? n))
    }

    /// C[m, n] = A[m, k] · B[k, n] (+ C when accumulate); one row as sgemv, as above.
    @inline(__always)
    public static func gemmNN(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                              m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil,
                              alpha: Float = 1, accumulate: Bool = false) {
        if m == 1 {
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb ?? n), a, 1,
                        accumulate ? 1 : 0, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda ?? k), b, Int32(ldb ?? n), accumulate ? 1 : 0, c, Int32(ldc ?? n))
    }

    /// Y[T, out] = X[T, in] · W[out, in]ᵀ for a Linear weight W.
    public static func linear(_ x: [Float], rows: Int, _ w: Tensor) -> [Float] {
        let (out, inp) = (w.shape[0], w.shape[1])
        precondition(x.count == rows * inp, "linear: input has \(x.count) values, expected \(rows)×\(inp)")
        var y = [Float](repeating: 0, count: rows * out)
        if rows == 0 || out == 0 { return y }
        x.withUnsafeBufferPointer { xp in
            w.data.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    gemmNT(xp.baseAddress!, wp.baseAddress!, yp.baseAddress!, m: rows, n: out, k: inp)
                }
            }
        }
        return y
    }

    /// OpenBLAS's own thread pool; the harness parallelises itself, so default 1.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}

/// RMSNorm in f32 (method §2), in place, times `gain` · scale: w ⊙ x / sqrt(mean(x²) + 1e-6).
@inline(__always)
public func rmsNorm(_ x: UnsafeMutablePointer<Float>, count: Int, weight: UnsafePointer<Float>, scale: Float = 1) {
    var ss: Float = 0
    for i in 0..<count { ss += x[i] * x[i] }
    let inv = scale / (ss / Float(count) + 1e-6).squareRoot()
    for i in 0..<count { x[i] = x[i] * inv * weight[i] }
}

/// Half-split rotary embedding tables for one rotary width (method §2).
public struct RoPE: Sendable {
    public let dim: Int
    let frequencies: [Double]   // f_j = 10000^(−2j/dim), j < dim/2

    public init(dim: Int) {
        self.dim = dim
        frequencies = (0..<(dim / 2)).map { pow10000(-2 * Double($0) / Double(dim)) }
    }

    /// Rotates x[0..<dim] for position `position`: [x1·cos − x2·sin, x1·sin + x2·cos].
    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Float>, position: Int) {
        let half = dim / 2
        for j in 0..<half {
            let theta = Double(position) * frequencies[j]
            let (c, s) = (Float(cos(theta)), Float(sin(theta)))
            let (a, b) = (x[j], x[j + half])
            x[j] = a * c - b * s
            x[j + half] = a * s + b * c
        }
    }
}

@inline(__always) func pow10000(_ e: Double) -> Double { exp(e * log(10000.0)) }

#if canImport(Glibc)
import Glibc
#endif
