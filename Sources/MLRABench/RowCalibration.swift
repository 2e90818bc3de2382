import MLRACore
import MLRACuda

/// The calibration a sweep row's roofline is held to: the CPU's (one per thread count,
/// or --calibration) for a cpu row, the GPU's (--gpu-calibration, or measured on rank
/// 0's GPU) for a cuda row. Which one a row used is its `calib_source`.
public enum RowCalibration: Sendable {
    case cpu(Calibration)
    case gpu(GPUCalibration)

    /// The row's calibration and roofline columns (docs/csv-schema.md): the roofs it is
    /// held to, roofline_us = max(bytes / read bandwidth, FLOPs / compute peak) and
    /// roofline_fraction = roofline_us / the kernel's median. The CPU's peak is
    /// max(sgemm, FMA loop); the GPU's is the tensor cores' for 16-bit caches and the
    /// CUDA cores' FMA for f32 (GPUCalibration.peakTFlops). The other device's
    /// calibration columns are left out (empty in the row).
    public func columns(dtype: StorageDType, bytes: Double, flops: Double, kernelSeconds: Double) -> [String: String] {
        var row = [String: String]()
        let bound: Double
        switch self {
        case .cpu(let cal):
            row["calib_threads"] = "\(cal.threads)"
            row["calib_read_gbs"] = fmt(cal.readGBs); row["calib_triad_gbs"] = fmt(cal.triadGBs)
            row["calib_sgemm_gflops"] = fmt(cal.sgemmGFlops); row["calib_fma_gflops"] = fmt(cal.fmaGFlops)
            row["calib_fma_width"] = cal.fmaWidth
            bound = cal.rooflineSeconds(bytes: bytes, flops: flops)
        case .gpu(let cal):
            row["gpu_calib_read_gbs"] = fmt(cal.readGBs); row["gpu_calib_copy_gbs"] = fmt(cal.copyGBs)
            row["gpu_calib_tensor_tflops"] = fmt(cal.tensorTFlops); row["gpu_calib_fma_tflops"] = fmt(cal.fmaTFlops)
            bound = cal.rooflineSeconds(bytes: bytes, flops: flops, cache: dtype)
        }
        row["roofline_us"] = fmt(bound * 1e6)
        row["roofline_fraction"] = fmt(bound / kernelSeconds)
        return row
    }
}
