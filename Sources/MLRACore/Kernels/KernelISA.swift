import CKernels

/// Which inner loops `TiledAttentionKernel` runs (see its comment for the paths).
public enum KernelISA: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Hand-vectorised AVX-512 loops (CKernels): large groups (MLA family) as register-
    /// blocked GEMMs with heads along the lanes; groups of 2–16 heads (GQA) as dot
    /// products with f16/bf16 converted in registers. Lone heads (MHA) keep the Swift path.
    case avx512
    /// Portable: OpenBLAS sgemm for large groups, Swift SIMD loops (built for AVX2) for small ones.
    case portable

    public var description: String { rawValue }

    /// Whether this CPU runs the loops.
    public var isSupported: Bool {
        switch self {
        case .avx512: return mlra_cpu_has_avx512() != 0
        case .portable: return true
        }
    }

    /// The fastest loops this CPU runs.
    public static let detected: KernelISA = KernelISA.avx512.isSupported ? .avx512 : .portable
}

/// The widest multiply-add this CPU runs, for the roofline's compute peak: the peak
/// is the hardware's, whichever loops a kernel happens to use.
public enum FMAWidth: String, Sendable {
    case avx512, avx2

    public static var widest: FMAWidth? {
        if mlra_cpu_has_avx512() != 0 { return .avx512 }
        if mlra_cpu_has_avx2() != 0 { return .avx2 }
        return nil
    }

    /// Runs `iterations` rounds of independent FMA chains; returns the FLOPs done.
    public func loop(iterations: Int) -> Double {
        mlra_fma_loop(cISA, iterations)
    }

    /// The width under CKernels' name.
    var cISA: mlra_isa {
        switch self {
        case .avx512: MLRA_ISA_AVX512
        case .avx2: MLRA_ISA_AVX2
        }
    }
}

extension StorageDType {
    /// The storage type under CKernels' name (the rows its loops read).
    var cDType: mlra_dtype {
        switch self {
        case .f32: MLRA_DTYPE_F32
        case .f16: MLRA_DTYPE_F16
        case .bf16: MLRA_DTYPE_BF16
        }
    }
}
