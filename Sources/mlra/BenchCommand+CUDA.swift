import Foundation
import MLRABench
import MLRACore
import MLRACuda

/// `mlra bench --device cuda`: the same configuration in kernel scope on this rank's GPU.
extension BenchCommand {
    func runCUDA() throws {
        let (layout, rank, shard) = try plannedShard()
        let device = try CUDADevice.bindFromEnvironment()
        // validate() warned about (or refused) the old spelling; here either names the file.
        let cal = try (gpuCalibration ?? calibration).map(GPUCalibration.load) ?? GPUCalibration.measure(device: device, quick: true)
        let clocks = device.clocksMHz()
        let freeBefore = try device.freeMemoryBytes()
        let work = try GPUKernelWorkload(device: device, layout: layout, shard: shard, dtype: kvDtype,
                                         lengths: Array(repeating: context, count: batch), coldCache: coldCache, tuning: gpu.tuning)
        let used = freeBefore - (try device.freeMemoryBytes())

        let checks = try GPUValidation.beforeTiming(work, full: fullCheck)
        let samples = try GPUTiming.run(work, warmup: warmup, steps: steps)
        let out = try work.outputs()
        guard out.allSatisfy(\.isFinite) else { throw HarnessError("the GPU kernel produced non-finite outputs") }

        let row = GPUBenchRow(variant: variant.rawValue, tp: tp, rank: rank, context: context, batch: batch, kvDtype: kvDtype,
                              device: device, clocks: clocks, kernel: work.attention.summary,
                              mode: coldCache ? "cold" : "warm", cacheSets: work.cacheSets, steps: steps,
                              launched: SampleStats(samples.launched), graph: SampleStats(samples.graph),
                              bytes: Double(work.bytesPerStep), flops: Double(work.flopsPerStep), cal: cal,
                              checks: checks, deviceBytesUsed: used, deviceBytesNeeded: work.neededBytes)
        print(format == .csv ? GPUBenchRow.csvHeader + "\n" + row.csv : row.table)
    }
}

/// One GPU bench result. Times are CUDA-event times per step; the roofline fraction and
/// the bandwidth fraction use the graph-replay median (the kernels' own time, launch
/// gaps removed); `launch_overhead_us` is launched − graph medians.
struct GPUBenchRow {
    let variant: String, tp: Int, rank: Int, context: Int, batch: Int, kvDtype: StorageDType
    let device: CUDADevice, clocks: (sm: Int, memory: Int)?
    let kernel: String, mode: String, cacheSets: Int, steps: Int
    let launched: SampleStats, graph: SampleStats
    let bytes: Double, flops: Double
    let cal: GPUCalibration
    let checks: [GPUValidation.Result]
    let deviceBytesUsed: Int, deviceBytesNeeded: Int

    var bound: Double { cal.rooflineSeconds(bytes: bytes, flops: flops, cache: kvDtype) }
    var memoryBound: Bool { cal.memoryBound(bytes: bytes, flops: flops, cache: kvDtype) }
    var gbs: Double { bytes / graph.median / 1e9 }
    var tflops: Double { flops / graph.median / 1e12 }
    var bandwidthFraction: Double { bytes / (cal.readGBs * 1e9) / graph.median }

    static let csvHeader = "variant,tp,rank,context,batch,kv_dtype,device," + CUDADevice.csvColumns.joined(separator: ",")
        // Shared quantities under the sweep's names (its cuda rows): the launched step is
        // step_us_*, the graph replay kernel_us_*, the GPU calibration gpu_calib_*.
        + ",gpu_kernel,cold_cache,cache_sets,timed_steps,"
        + "step_us_median,step_us_p10,step_us_p90,step_us_min,step_us_max,kernel_us_median,kernel_us_p10,kernel_us_p90,launch_overhead_us,"
        + "kernel_bytes_per_step,kernel_flops_per_step,achieved_gbs,achieved_gflops,gpu_calib_read_gbs,gpu_calib_copy_gbs,"
        + "gpu_calib_tensor_tflops,gpu_calib_fma_tflops,"
        + "roofline_us,roofline_limit,roofline_fraction,read_bw_fraction,validation_cpu_max_err,validation_full_max_err,"
        + "device_bytes_used,device_bytes_needed,device_memory_ratio"

    var csv: String {
        let us = { (s: Double) -> String in String(format: "%.2f", s * 1e6) }
        let f = { (format: String, v: Double) -> String in String(format: format, v) }
        let quoted = "\"" + kernel.replacingOccurrences(of: "\"", with: "'") + "\""
        var fields: [String] = [variant, "\(tp)", "\(rank)", "\(context)", "\(batch)", kvDtype.rawValue, "cuda"]
        fields += device.csvFields(clocks: clocks)
        fields += [quoted, mode == "cold" ? "true" : "false", "\(cacheSets)", "\(steps)"]
        fields += [us(launched.median), us(launched.p10), us(launched.p90), us(launched.min), us(launched.max)]
        fields += [us(graph.median), us(graph.p10), us(graph.p90), us(launched.median - graph.median)]
        fields += [f("%.0f", bytes), f("%.0f", flops), f("%.1f", gbs), f("%.1f", tflops * 1e3)]
        fields += [f("%.1f", cal.readGBs), f("%.1f", cal.copyGBs), f("%.1f", cal.tensorTFlops), f("%.1f", cal.fmaTFlops)]
        fields += [us(bound), memoryBound ? "bandwidth" : "compute", f("%.3f", bound / graph.median), f("%.3f", bandwidthFraction)]
        fields += [f("%.3g", checks[0].maxError), checks.count > 1 ? f("%.3g", checks[1].maxError) : ""]
        fields += ["\(deviceBytesUsed)", "\(deviceBytesNeeded)", f("%.3f", Double(deviceBytesUsed) / Double(deviceBytesNeeded))]
        return fields.joined(separator: ",")
    }

    var table: String {
        let clockText = clocks.map { "SM \($0.sm) MHz, memory \($0.memory) MHz (read before timing)" } ?? "unknown (no NVML)"
        let limit: NSString = memoryBound ? "bandwidth" : "compute"
        var lines: [String] = []
        lines.append("mlra \(HarnessVersion.string) bench: \(variant) tp \(tp) rank \(rank), L \(context), batch \(batch), "
                     + "\(kvDtype) cache, \(mode) cache (\(cacheSets) set(s)), \(steps) steps")
        lines.append("  device              \(device.summary)")
        lines.append("  clocks              " + clockText)
        lines.append("  kernel              \(kernel)")
        lines.append(String(format: "  time per step       graph replay median %.1f us   p10 %.1f   p90 %.1f",
                            graph.median * 1e6, graph.p10 * 1e6, graph.p90 * 1e6))
        lines.append(String(format: "                      launched     median %.1f us   p10 %.1f   p90 %.1f   (launch overhead %.1f us)",
                            launched.median * 1e6, launched.p10 * 1e6, launched.p90 * 1e6, (launched.median - graph.median) * 1e6))
        lines.append(String(format: "  bytes per step      %.0f (%.2f MB)", bytes, bytes / 1e6))
        lines.append(String(format: "  FLOPs per step      %.0f (%.3f GFLOP, %.1f FLOP/byte)", flops, flops / 1e9, flops / bytes))
        lines.append(String(format: "  achieved            %.1f GB/s   %.1f TFLOP/s", gbs, tflops))
        lines.append(String(format: "  calibration         read %.1f GB/s, copy %.1f GB/s, tensor bf16 %.1f TFLOP/s, f32 FMA %.1f TFLOP/s",
                            cal.readGBs, cal.copyGBs, cal.tensorTFlops, cal.fmaTFlops))
        lines.append(String(format: "  roofline bound      %.1f us (%@-bound)   fraction reached %.3f   of read bandwidth %.3f",
                            bound * 1e6, limit, bound / graph.median, bandwidthFraction))
        for c in checks {
            lines.append(String(format: "  validated           max |error| %.3g: %@", c.maxError, c.what as NSString))
        }
        let ratio = Double(deviceBytesUsed) / Double(deviceBytesNeeded)
        lines.append(String(format: "  device memory       %.1f MB used, %.1f MB needed (caches + queries + outputs + partials), ratio %.3f",
                            Double(deviceBytesUsed) / 1e6, Double(deviceBytesNeeded) / 1e6, ratio))
        return lines.joined(separator: "\n")
    }
}
