import ArgumentParser
import Foundation
import MLRABench
import MLRACore
import MLRACuda

/// What `mlra calibrate` can print (json is what --calibration reads).
enum CalibrateFormat: String, ExpressibleByArgument, CaseIterable { case table, json }

/// `mlra calibrate`: this machine's roofline (bandwidth and peak f32 FLOP/s).
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Measure streaming bandwidth and peak f32 FLOP/s (the roofline the bench reports against).")

    @Option(help: "Threads to measure with (the kernel's --threads).")
    var threads = 1
    @Flag(help: "Smaller arrays and fewer repetitions (about 1–2 s).")
    var quick = false
    @Option(help: "table or json (json is what 'mlra bench --calibration' reads).")
    var format: CalibrateFormat = .table
    @Option(help: "cpu or cuda (cuda: this process's GPU: bandwidth, tensor-core and FMA peaks).")
    var device: DeviceKind = .cpu

    func validate() throws { try validateThreads(threads) }

    func run() throws {
        if device == .cuda { return try runCUDA() }
        let c = try Calibration.measure(threads: threads, quick: quick)
        if format == .json { return try printJSON(c) }
        print("mlra \(HarnessVersion.string) calibrate: threads \(c.threads), \(quick ? "quick" : "full") mode, OpenBLAS core \(c.blasCore)")
        print(c.tableLines().joined(separator: "\n"))
    }
}

extension CalibrateCommand {
    func runCUDA() throws {
        let gpu = try CUDADevice.bindFromEnvironment()
        let c = try GPUCalibration.measure(device: gpu, quick: quick)
        if format == .json { return try printJSON(c) }
        print("mlra \(HarnessVersion.string) calibrate: \(gpu.summary), \(quick ? "quick" : "full") mode")
        print(c.tableLines().joined(separator: "\n"))
    }
}

/// What --calibration reads back: sorted keys, one value per line.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension Calibration {
    /// Fixed-width lines, units in the names.
    func tableLines() -> [String] {
        let line = calibrationTableLine
        return [
            line("read_GBs", readGBs, ""),
            line("triad_GBs", triadGBs, ""),
            line("sgemm_GFLOPs", sgemmGFlops, ""),
            line("fma_loop_GFLOPs", fmaGFlops, "   (\(fmaWidth) multiply-add loop: the f32 peak)"),
            line("ridge_FLOP_per_byte", peakGFlops / bandwidthGBs, "   (max(sgemm, fma loop) / read)"),
            line("llc_MB", Double(llcBytes) / 1048576, String(format: "   (arrays of %.0f MB)", Double(arrayBytes) / 1048576)),
        ].map { "  " + $0 }
    }
}
