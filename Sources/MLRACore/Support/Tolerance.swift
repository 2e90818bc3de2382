/// |x − ref| ≤ atol + rtol·|ref|, elementwise: the one form of every numerical
/// check in the harness (tests and the sweep's validation before timing).
public struct Tolerance: Sendable, Equatable {
    public let atol: Double, rtol: Double
    public init(atol: Double, rtol: Double) { self.atol = atol; self.rtol = rtol }

    /// Layer outputs of order 1 against the Double reference, by KV-cache dtype:
    /// f32 is arithmetic rounding only; f16 (11-bit significand) and bf16 (8-bit)
    /// add the rounding of every cached value, carried through softmax and two
    /// projections.
    public static func layerOutput(cache dtype: StorageDType) -> Tolerance {
        switch dtype {
        case .f32: Tolerance(atol: 2e-5, rtol: 2e-4)
        case .f16: Tolerance(atol: 4e-3, rtol: 1e-2)
        case .bf16: Tolerance(atol: 3e-2, rtol: 5e-2)
        }
    }

    /// A layer against the Double reference when its kernel's products ran in `math`: the
    /// layer's own rounding plus, for bf16 products, the kernel's (`kernelAgreement(math:)`).
    public static func layerOutput(cache dtype: StorageDType, math: ProductMath) -> Tolerance {
        let layer = layerOutput(cache: dtype)
        guard math == .bf16 else { return layer }
        let kernel = kernelAgreement(math: math)
        return Tolerance(atol: layer.atol + kernel.atol, rtol: layer.rtol + kernel.rtol)
    }

    /// Two f32 kernels over the same cache that differ only in summation order.
    public static let kernelAgreement = Tolerance(atol: 1e-5, rtol: 1e-4)

    /// A CPU kernel against the plain (f32) kernel on the same cache, by the math its
    /// products ran in (`ProductMath`). bf16 products round the queries (times the scale)
    /// and the softmax weights to bf16 before multiplying, with f32 sums: the rounding of
    /// the tensor-core GPU kernel, so its bf16 tolerance (`gpuKernelAgreement(cache: .bf16)`).
    /// The weights' rounding moves an output by at most 2⁻⁹·max|v| (2e-3 for the checks'
    /// values in [-1, 1)); the queries' moves a score by at most 2⁻⁹·τ·Σ|q|·max|k|, and the
    /// output by about twice that times max|v|: within this tolerance for the checks' data,
    /// not for scores of any size (KernelTests holds larger data to that bound instead).
    public static func kernelAgreement(math: ProductMath) -> Tolerance {
        switch math {
        case .f32: kernelAgreement
        case .bf16: gpuKernelAgreement(cache: .bf16)
        }
    }

    /// A GPU kernel against the CPU plain kernel (or the device reference) on the same
    /// cache: the tensor-core kernel rounds the queries and the softmax weights to the
    /// cache's 16-bit type before multiplying (as FlashAttention does), which f32
    /// kernels never do; the f32 GPU kernel differs only in summation order and exp2.
    public static func gpuKernelAgreement(cache dtype: StorageDType) -> Tolerance {
        switch dtype {
        case .f32: Tolerance(atol: 2e-5, rtol: 2e-4)
        case .f16: Tolerance(atol: 5e-4, rtol: 5e-3)
        case .bf16: Tolerance(atol: 3e-3, rtol: 2e-2)
        }
    }

    /// A layer on the GPU against the Double reference: the layer's own rounding
    /// (`layerOutput`, with f32 GEMMs as on the CPU), the tensor-core kernel's
    /// (`gpuKernelAgreement`), and with 16-bit GEMMs theirs (weights and activations rounded
    /// to the GEMMs' type, which rounds every projection's inputs as a cache of that type
    /// rounds the attention's: that cache's layer bound once more), added.
    public static func gpuLayerOutput(cache dtype: StorageDType, gemm: StorageDType = .f32) -> Tolerance {
        let (layer, kernel) = (layerOutput(cache: dtype), gpuKernelAgreement(cache: dtype))
        let products = gemm == .f32 ? Tolerance(atol: 0, rtol: 0) : layerOutput(cache: gemm)
        return Tolerance(atol: layer.atol + kernel.atol + products.atol, rtol: layer.rtol + kernel.rtol + products.rtol)
    }

    /// The worst violation, or nil when every element is within tolerance.
    public func firstViolation(_ x: [Float], _ ref: [Double]) -> Violation? {
        guard x.count == ref.count else { return Violation(index: -1, value: .nan, reference: .nan, maxError: .infinity) }
        var worst: (excess: Double, index: Int)? = nil
        var maxError = 0.0
        for i in 0..<x.count {
            let err = abs(Double(x[i]) - ref[i])
            if !err.isFinite { return Violation(index: i, value: Double(x[i]), reference: ref[i], maxError: .infinity) }
            maxError = max(maxError, err)
            let excess = err - (atol + rtol * abs(ref[i]))
            if excess > 0 && excess > (worst?.excess ?? 0) { worst = (excess, i) }
        }
        guard let w = worst else { return nil }
        return Violation(index: w.index, value: Double(x[w.index]), reference: ref[w.index], maxError: maxError)
    }

    /// Largest |x − ref| (for reporting a passed check).
    public static func maxError(_ x: [Float], _ ref: [Double]) -> Double {
        zip(x, ref).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
    }

    public struct Violation: Sendable, CustomStringConvertible {
        public let index: Int, value: Double, reference: Double, maxError: Double
        public var description: String {
            index < 0 ? "output has the wrong number of elements"
                : "element \(index) is \(value), reference \(reference) (max |error| \(maxError))"
        }
    }
}
