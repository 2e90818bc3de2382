import Foundation
import MLRACore

/// One line of a calibration table (CPU and GPU alike): name, value, note.
public func calibrationTableLine(_ name: String, _ value: Double, _ note: String) -> String {
    name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%10.1f", value) + note
}

/// The GPU's roofline, measured on the bound device (kernels/calibrate.cu): read-only and
/// copy streaming bandwidth over arrays far beyond the L2 (copy counts bytes read plus
/// written), the bf16 tensor-core peak of an mma.sync loop (the instruction the decode
/// kernel uses) and the f32 FMA peak. Each figure is the best of several repetitions,
/// timed with CUDA events. GPU rows hold their roofline to these.
public struct GPUCalibration: Codable, Sendable, Equatable {
    /// "cuda": tells a GPU calibration file from a CPU one.
    public var device = "cuda"
    public var gpuName: String
    public var gpuUUID: String
    public var gpuPCIBusId: String
    public var driverVersion: String
    /// Clocks read just before measuring (MHz; 0 when NVML is absent).
    public var smClockMHz: Int
    public var memoryClockMHz: Int
    public var readGBs: Double
    public var copyGBs: Double
    /// mma.sync m16n8k16 bf16 with f32 accumulation, TFLOP/s.
    public var tensorTFlops: Double
    /// f32 fused multiply-add on CUDA cores, TFLOP/s.
    public var fmaTFlops: Double
    public var l2Bytes: Int
    public var arrayBytes: Int

    /// The file's keys are the CSV's names: the GPU's identity as its `gpu_` columns, the
    /// figures as their `gpu_calib_` columns without the prefix (`read_gbs`). Files written
    /// with the old names (`readGBs`, `gpuName`, …: `renamedKeys`) still load.
    enum CodingKeys: String, CodingKey {
        case device, gpuName = "gpu_name", gpuUUID = "gpu_uuid", gpuPCIBusId = "gpu_pci_bus_id", driverVersion = "gpu_driver"
        case smClockMHz = "gpu_sm_clock_mhz", memoryClockMHz = "gpu_mem_clock_mhz", readGBs = "read_gbs", copyGBs = "copy_gbs"
        case tensorTFlops = "tensor_tflops", fmaTFlops = "fma_tflops", l2Bytes = "l2_bytes", arrayBytes = "array_bytes"
    }

    public static let renamedKeys: KeyRenames = [
        "gpu_name": "gpuName", "gpu_uuid": "gpuUUID", "gpu_pci_bus_id": "gpuPCIBusId", "gpu_driver": "driverVersion",
        "gpu_sm_clock_mhz": "smClockMHz", "gpu_mem_clock_mhz": "memoryClockMHz", "read_gbs": "readGBs", "copy_gbs": "copyGBs",
        "tensor_tflops": "tensorTFlops", "fma_tflops": "fmaTFlops", "l2_bytes": "l2Bytes", "array_bytes": "arrayBytes",
    ]

    /// The compute peak a kernel over `dtype` caches can reach: tensor cores for 16-bit, CUDA cores for f32.
    public func peakTFlops(cache dtype: StorageDType) -> Double { dtype == .f32 ? fmaTFlops : tensorTFlops }

    /// max(bytes / read bandwidth, FLOPs / peak for the cache's dtype), seconds.
    public func rooflineSeconds(bytes: Double, flops: Double, cache dtype: StorageDType) -> Double {
        max(bytes / (readGBs * 1e9), flops / (peakTFlops(cache: dtype) * 1e12))
    }

    public func memoryBound(bytes: Double, flops: Double, cache dtype: StorageDType) -> Bool {
        bytes / (readGBs * 1e9) >= flops / (peakTFlops(cache: dtype) * 1e12)
    }

    public static func load(path: String) throws -> GPUCalibration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HarnessError("\(path): cannot read calibration file")
        }
        // Strict like every input (no key twice, counts as integers); a CPU calibration is refused.
        let hint = " (re-run 'mlra calibrate --device cuda --format json')"
        let c = try StrictJSON.decode(GPUCalibration.self, from: data, path: path, kind: "GPU calibration",
                                      check: { try RenamedKeys.check($0, path: path, kind: "GPU calibration", Self.renamedKeys) },
                                      integerKeys: ["gpu_sm_clock_mhz", "gpu_mem_clock_mhz", "l2_bytes", "array_bytes",
                                                    "smClockMHz", "memoryClockMHz", "l2Bytes", "arrayBytes"],
                                      renames: Self.renamedKeys, hint: hint)
        guard c.device == "cuda" else { throw HarnessError("\(path): not a GPU calibration" + hint) }
        guard [c.readGBs, c.copyGBs, c.tensorTFlops, c.fmaTFlops].allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw HarnessError("\(path): bandwidths and peaks must be positive numbers" + hint)
        }
        guard c.l2Bytes >= 0, c.l2Bytes <= 1 << 40 else { throw HarnessError("\(path): l2_bytes \(c.l2Bytes) is out of range" + hint) }
        return c
    }

    /// Measures on `device`. Full: 4 GB arrays, 7 repetitions; quick: 1 GB, 3.
    public static func measure(device: CUDADevice, quick: Bool = false) throws -> GPUCalibration {
        let clocks = device.clocksMHz()
        let reps = quick ? 3 : 7
        let arrayBytes = max(quick ? 1 << 30 : 4 << 30, 16 * device.l2Bytes)
        try device.checkFits(bytes: 2 * arrayBytes, what: "the calibration arrays")
        let compiler = KernelCompiler.shared
        let read = try compiler.function("stream_read", in: .calibrate, arch: device.arch)
        let copy = try compiler.function("stream_copy", in: .calibrate, arch: device.arch)
        let mma = try compiler.function("mma_peak", in: .calibrate, arch: device.arch)
        let fma = try compiler.function("fma_peak", in: .calibrate, arch: device.arch)
        let fill = try compiler.function("fill_uniform", in: .cacheFill, arch: device.arch)
        let a = try DeviceBuffer(bytes: arrayBytes, what: "calibration array a")
        let b = try DeviceBuffer(bytes: arrayBytes, what: "calibration array b")
        let sink = try DeviceBuffer(bytes: 64, what: "calibration sink")
        // Random data, not zeros (zeros can run faster than real data).
        try fill.launch(grid: (device.smCount * 16, 1, 1), block: 256, stream: device.stream,
                        KernelArguments().add(a.pointer).add(UInt64(arrayBytes / 4)).add(UInt64(0x5EED)).add(Int32(2)))
        let timer = try EventTimer(stream: device.stream)
        func best(_ body: () throws -> Void) throws -> Double {
            try body()  // warm-up: module load, clocks
            var t = Double.infinity
            for _ in 0..<reps { t = min(t, try timer.time(body)) }
            return t
        }
        let vectors = UInt64(arrayBytes / 16)
        let grid = (device.smCount * 8, 1, 1)
        let tRead = try best { try read.launch(grid: grid, block: 512, stream: device.stream,
                                               KernelArguments().add(a.pointer).add(vectors).add(sink.pointer)) }
        let tCopy = try best { try copy.launch(grid: grid, block: 512, stream: device.stream,
                                               KernelArguments().add(a.pointer).add(b.pointer).add(vectors)) }
        let mmaBlocks = device.smCount * 4, mmaIters = quick ? 4000 : 20000
        let tMMA = try best { try mma.launch(grid: (mmaBlocks, 1, 1), block: 256, stream: device.stream,
                                             KernelArguments().add(Int32(mmaIters)).add(sink.pointer)) }
        let fmaBlocks = device.smCount * 8, fmaIters = quick ? 500 : 2000
        let tFMA = try best { try fma.launch(grid: (fmaBlocks, 1, 1), block: 256, stream: device.stream,
                                             KernelArguments().add(Int32(fmaIters)).add(sink.pointer)) }
        let mmaFlops = Double(mmaBlocks * 8 * mmaIters * 8) * 4096   // warps × iterations × ACC × 2·16·8·16
        let fmaFlops = Double(fmaBlocks * 256 * fmaIters * 8) * 2
        return GPUCalibration(gpuName: device.name, gpuUUID: device.uuid, gpuPCIBusId: device.pciBusId,
                              driverVersion: CUDADriver.driverVersion, smClockMHz: clocks?.sm ?? 0,
                              memoryClockMHz: clocks?.memory ?? 0,
                              readGBs: Double(arrayBytes) / tRead / 1e9, copyGBs: 2 * Double(arrayBytes) / tCopy / 1e9,
                              tensorTFlops: mmaFlops / tMMA / 1e12, fmaTFlops: fmaFlops / tFMA / 1e12,
                              l2Bytes: device.l2Bytes, arrayBytes: arrayBytes)
    }

    /// Fixed-width lines, units in the names.
    public func tableLines() -> [String] {
        let line = calibrationTableLine
        return [
            line("read_GBs", readGBs, "   (read-only stream, \(arrayBytes >> 20) MiB)"),
            line("copy_GBs", copyGBs, "   (bytes read + written)"),
            line("tensor_bf16_TFLOPs", tensorTFlops, "   (mma.sync m16n8k16 loop: the 16-bit caches' peak)"),
            line("fma_f32_TFLOPs", fmaTFlops, "   (CUDA-core FMA loop: the f32 caches' peak)"),
            line("ridge_bf16_FLOP_per_B", tensorTFlops * 1000 / readGBs, ""),
            line("l2_MB", Double(l2Bytes) / 1048576, ""),
            line("sm_clock_MHz", Double(smClockMHz), "   (read before measuring; 0: NVML absent)"),
            line("mem_clock_MHz", Double(memoryClockMHz), ""),
        ].map { "  " + $0 }
    }
}
