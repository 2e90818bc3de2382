import CKernels
import Glibc

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

/// Which arithmetic the kernel's products may use (`--math`): a request, resolved per
/// call to the `ProductMath` that runs (`TiledAttentionKernel.productMath`).
public enum KernelMath: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    /// bf16 products with f32 sums where the CPU has them and they are the faster
    /// (`ProductMath.bf16Outruns`): bf16 caches, the large-group AVX-512 loops (the MLA
    /// family), as GPU tensor cores and PyTorch's bf16 CPU kernels multiply. Elsewhere f32.
    case auto
    /// Every product in f32 (16-bit elements converted exactly first): the default, so
    /// that rows stay comparable with those measured before `--math` existed.
    case f32
    /// bf16 products wherever the loops have them, faster or not (needs AVX-512 BF16):
    /// to measure them, and to test them on every CPU that runs them.
    case bf16

    public var description: String { rawValue }
}

/// The arithmetic a kernel call's products ran in (the CSV's `kernel_math`).
///
/// f16 caches stay f32 under every `KernelMath`: AVX-512 FP16 multiplies f16 by f16 into
/// f16 sums (VFMADDPH), an 11-bit running sum over hundreds of columns and thousands of
/// tokens, not the "16-bit products, f32 sums" of a tensor core (its only f32-sum form,
/// VFMADDCPH, is for complex pairs). An f16 cache is converted to f32 (VCVTPH2PS) as before.
public enum ProductMath: String, CaseIterable, Sendable, CustomStringConvertible {
    /// f32 products and sums (16-bit elements converted exactly to f32 first).
    case f32
    /// bf16 × bf16 products summed in f32 (VDPBF16PS): the queries and the softmax
    /// weights rounded to bf16.
    case bf16

    public var description: String { rawValue }

    /// Whether this CPU runs the loops.
    public var isSupported: Bool {
        switch self {
        case .f32: return true
        case .bf16: return mlra_cpu_has_avx512_bf16() != 0
        }
    }

    /// Whether this CPU's VDPBF16PS does at least 1.25 × the multiply-adds per second of
    /// its f32 FMA, in the same 12 independent chains (measured once per process, best of
    /// 5 alternating ~0.1 ms runs of each). Not a given: on the Intel Xeon (Sapphire
    /// Rapids class, no AMX exposed) this was written on, one VDPBF16PS zmm (32
    /// multiply-adds) took 2 cycles where 2 FMAs (16 each) issue per cycle: bf16 products
    /// ran at half the f32 rate (docs/kernels.md, "bf16 products"). The margin keeps a
    /// noisy measurement from flipping the choice.
    public static let bf16Outruns: Bool = ProductMath.bf16.isSupported && bf16RateOverF32() >= 1.25

    /// VDPBF16PS FLOP/s over f32 FMA FLOP/s on this CPU (0 without AVX-512 BF16).
    public static func bf16RateOverF32() -> Double {
        guard ProductMath.bf16.isSupported, let fma = FMAWidth.widest else { return 0 }
        func seconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        var best = (fma: 0.0, dp: 0.0)
        for _ in 0..<5 {
            var t0 = seconds()
            let f = fma.loop(iterations: 20_000)
            best.fma = max(best.fma, f / (seconds() - t0))
            t0 = seconds()
            let d = mlra_dpbf16_loop(20_000)
            best.dp = max(best.dp, d / (seconds() - t0))
        }
        return best.dp / best.fma
    }
}
