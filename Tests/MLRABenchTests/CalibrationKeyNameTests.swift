import Foundation
import MLRABench
import MLRACore
import MLRACuda
import XCTest

/// Calibration files speak the CSV's vocabulary (`read_gbs` for `calib_read_gbs`), and the
/// files written before the rename, kept beside users' CSVs, still load and keep their
/// identity (`calib_source` `file:…`, part of the resume key).
final class CalibrationKeyNameTests: XCTestCase {
    let cpu = Calibration(threads: 1, readGBs: 10, triadGBs: 9, sgemmGFlops: 50, fmaGFlops: 20, fmaWidth: "avx2", blasCore: "test",
                          llcBytes: 1 << 20, arrayBytes: 4 << 20)
    /// What `mlra calibrate --format json` wrote before the rename.
    let oldCPU = #"{"arrayBytes":4194304,"blasCore":"test","fmaGFlops":20,"fmaWidth":"avx2","llcBytes":1048576,"readGBs":10,"sgemmGFlops":50,"threads":1,"triadGBs":9}"#
    let oldGPU = #"""
        {"device": "cuda", "gpuName": "test", "gpuUUID": "GPU-0", "gpuPCIBusId": "0000:00:00.0", "driverVersion": "580",
         "smClockMHz": 1980, "memoryClockMHz": 3201, "readGBs": 4000, "copyGBs": 3800, "tensorTFlops": 640,
         "fmaTFlops": 60, "l2Bytes": 62914560, "arrayBytes": 4294967296}
        """#
    var gpu: GPUCalibration {
        let d = JSONDecoder()
        d.keyDecodingStrategy = RenamedKeys.readingOldNames(GPUCalibration.renamedKeys)
        return try! d.decode(GPUCalibration.self, from: Data(oldGPU.utf8))
    }

    func sorted(_ value: some Encodable, old: Bool = false) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        if old { e.keyEncodingStrategy = RenamedKeys.writingOldNames(CalibrationStore.renamedKeys) }
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cal-\(UUID()).json").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testFilesAreWrittenUnderTheCSVNames() throws {
        XCTAssertEqual(try sorted(cpu), #"{"array_bytes":4194304,"blas_core":"test","fma_gflops":20,"fma_width":"avx2","llc_bytes":1048576,"#
                       + #""read_gbs":10,"sgemm_gflops":50,"threads":1,"triad_gbs":9}"#)
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(gpu)) as? [String: Any]).keys
        XCTAssertEqual(Set(keys), ["device", "gpu_name", "gpu_uuid", "gpu_pci_bus_id", "gpu_driver", "gpu_sm_clock_mhz",
                                   "gpu_mem_clock_mhz", "read_gbs", "copy_gbs", "tensor_tflops", "fma_tflops", "l2_bytes", "array_bytes"])
        // The GPU's identity keys are its CSV columns; the figures are the gpu_calib_ columns without the prefix.
        XCTAssertTrue(CUDADevice.csvColumns.filter { $0 != "gpu_ranks_sharing" }.allSatisfy(keys.contains))
        XCTAssertTrue(ResultsSchema.columns.filter { $0.hasPrefix("gpu_calib_") }.allSatisfy { keys.contains(String($0.dropFirst(10))) })
        XCTAssertTrue(ResultsSchema.columns.filter { $0.hasPrefix("calib_") && $0 != "calib_source" }
            .allSatisfy { try! sorted(cpu).contains("\"\($0.dropFirst(6))\"") })
    }

    func testFilesWithTheOldNamesStillLoad() throws {
        XCTAssertEqual(try Calibration.load(path: file(oldCPU)), cpu)
        XCTAssertEqual(try Calibration.load(path: file(sorted(cpu))), cpu)
        let g = try GPUCalibration.load(path: file(oldGPU))
        XCTAssertEqual([g.gpuName, g.gpuUUID, g.gpuPCIBusId, g.driverVersion, g.device], ["test", "GPU-0", "0000:00:00.0", "580", "cuda"])
        XCTAssertEqual([g.readGBs, g.copyGBs, g.tensorTFlops, g.fmaTFlops], [4000, 3800, 640, 60])
        XCTAssertEqual([g.smClockMHz, g.memoryClockMHz, g.l2Bytes, g.arrayBytes], [1980, 3201, 62914560, 4294967296])
        XCTAssertEqual(try GPUCalibration.load(path: file(sorted(gpu))), gpu)
        // An old file's refusals name its keys as the file does not: the message names the new key.
        let bad = try file(oldCPU.replacingOccurrences(of: #""readGBs":10"#, with: #""readGBs":-1"#))
        XCTAssertThrowsError(try Calibration.load(path: bad)) {
            XCTAssertTrue(($0 as? HarnessError)?.message.contains("calibration 'read_gbs' is -1.0") ?? false, "\($0)")
        }
        let both = try file(oldGPU.replacingOccurrences(of: "{", with: #"{"read_gbs": 4000,"#))
        XCTAssertThrowsError(try GPUCalibration.load(path: both)) {
            XCTAssertTrue(($0 as? HarnessError)?.message.contains("GPU calibration gives both 'read_gbs' and its old name 'readGBs'") ?? false,
                          "\($0)")
        }
    }

    /// calib_source hashes a calibration's values under the old names, so a file's identity
    /// (in rows and stores already written) does not change with the rename.
    func testTheIdentityHashIsTheOneBeforeTheRename() throws {
        XCTAssertEqual(try sorted(cpu, old: true), oldCPU)
        XCTAssertEqual(try sorted(try Calibration.load(path: file(sorted(cpu))), old: true), oldCPU)
        let oldGPUSorted = try sorted(try JSONDecoder().decode([String: StringOrNumber].self, from: Data(oldGPU.utf8)))
        XCTAssertEqual(try sorted(gpu, old: true), oldGPUSorted)
    }

    /// A store written beside a CSV before the rename loads as it was.
    func testAStoreWrittenBeforeTheRenameLoads() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("s-\(UUID()).csv").path
        let storePath = CalibrationStore.path(for: out)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: storePath) }
        try Data(#"{"cpu": {"1": \#(oldCPU)}, "cpuSource": "file:0123456789abcdef", "gpu": \#(oldGPU), "gpuSource": "gpu-measured"}"#.utf8)
            .write(to: URL(fileURLWithPath: storePath))
        let store = try XCTUnwrap(try CalibrationStore.load(for: out))
        XCTAssertEqual(store, CalibrationStore(cpu: ["1": cpu], cpuSource: "file:0123456789abcdef", gpu: gpu, gpuSource: "gpu-measured"))
        try store.write(for: out)
        let text = try String(contentsOfFile: storePath, encoding: .utf8)
        XCTAssertTrue(text.contains("\"cpu_calib_source\"") && text.contains("\"read_gbs\"") && !text.contains("cpuSource"), text)
        XCTAssertEqual(try CalibrationStore.load(for: out), store)
    }
}

/// A JSON scalar as written (for re-encoding a literal file with sorted keys).
enum StringOrNumber: Codable {
    case string(String), number(Int)
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) { self = .number(i) } else { self = .string(try c.decode(String.self)) }
    }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self { case .string(let s): try c.encode(s); case .number(let i): try c.encode(i) }
    }
}
