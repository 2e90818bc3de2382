import Foundation
import MLRABench
import MLRACore
import MLRACuda
import XCTest

/// Issue 11: a cuda row's roofline columns are held to the GPU calibration (`mlra
/// calibrate --device cuda`), a cpu row's to the CPU's; each row carries only its own
/// device's calibration columns. Pure functions, no GPU.
final class RowCalibrationTests: XCTestCase {
    /// An H200-like GPU calibration, as a --gpu-calibration file holds it.
    let gpu = try! JSONDecoder().decode(GPUCalibration.self, from: Data(#"""
        {"device": "cuda", "gpu_name": "test", "gpu_uuid": "GPU-0", "gpu_pci_bus_id": "0000:00:00.0", "gpu_driver": "580",
         "gpu_sm_clock_mhz": 1980, "gpu_mem_clock_mhz": 3201, "read_gbs": 4000, "copy_gbs": 3800, "tensor_tflops": 640,
         "fma_tflops": 60, "l2_bytes": 62914560, "array_bytes": 4294967296}
        """#.utf8))
    let cpu = Calibration(threads: 2, readGBs: 10, triadGBs: 9, sgemmGFlops: 50, fmaGFlops: 200, fmaWidth: "avx512",
                          blasCore: "test", llcBytes: 1 << 20, arrayBytes: 4 << 20)
    // MLRA-4 at TP 4, 512K tokens, bf16: 201326592 bytes, 21474836480 FLOPs per step (method §5).
    let bytes = 201_326_592.0, flops = 21_474_836_480.0

    func number(_ row: [String: String], _ column: String) throws -> Double {
        try XCTUnwrap(Double(try XCTUnwrap(row[column], "\(column) missing")), "\(column) is not a number")
    }

    func testACudaRowIsHeldToTheGPUCalibration() throws {
        // bf16: bandwidth-bound on the tensor-core roof, 201 MB / 4000 GB/s = 50.3 µs; the kernel took 62.9 µs.
        let kernel = 62.9e-6
        let bf16 = RowCalibration.gpu(gpu).columns(dtype: .bf16, bytes: bytes, flops: flops, kernelSeconds: kernel)
        XCTAssertEqual(try number(bf16, "roofline_us"), bytes / 4000e9 * 1e6, accuracy: 1e-3)
        XCTAssertEqual(try number(bf16, "roofline_fraction"), bytes / 4000e9 / kernel, accuracy: 1e-5)
        XCTAssertEqual(bf16["gpu_calib_read_gbs"], "4000"); XCTAssertEqual(bf16["gpu_calib_copy_gbs"], "3800")
        XCTAssertEqual(bf16["gpu_calib_tensor_tflops"], "640"); XCTAssertEqual(bf16["gpu_calib_fma_tflops"], "60")
        // f32 caches run on the CUDA cores: 21.5 GFLOP / 60 TFLOP/s = 357.9 µs, above 2 × 201 MB / 4000 GB/s.
        let f32 = RowCalibration.gpu(gpu).columns(dtype: .f32, bytes: 2 * bytes, flops: flops, kernelSeconds: 400e-6)
        XCTAssertEqual(try number(f32, "roofline_us"), flops / 60e12 * 1e6, accuracy: 1e-2)
        // The CPU's calibration columns stay empty on a cuda row.
        for column in ["calib_threads", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops", "calib_fma_width"] {
            XCTAssertNil(bf16[column], column)
        }
        XCTAssertTrue(bf16.keys.allSatisfy(ResultsSchema.columns.contains), "every column is in the schema")
    }

    func testACPURowIsHeldToTheCPUCalibration() throws {
        // Compute-bound: 21.5 GFLOP / max(sgemm 50, FMA 200) GFLOP/s = 107 ms, above 201 MB / 10 GB/s = 20 ms.
        let row = RowCalibration.cpu(cpu).columns(dtype: .bf16, bytes: bytes, flops: flops, kernelSeconds: 0.2)
        XCTAssertEqual(try number(row, "roofline_us"), flops / 200e9 * 1e6, accuracy: 1)
        XCTAssertEqual(try number(row, "roofline_fraction"), flops / 200e9 / 0.2, accuracy: 1e-5)
        XCTAssertEqual(row["calib_threads"], "2"); XCTAssertEqual(row["calib_fma_width"], "avx512")
        XCTAssertTrue(row.keys.allSatisfy { !$0.hasPrefix("gpu_") }, "no GPU columns on a cpu row")
    }
}
