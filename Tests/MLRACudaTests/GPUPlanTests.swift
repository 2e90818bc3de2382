import Foundation
import MLRACore
@testable import MLRACuda
import XCTest

/// The GPU backend's host-side decisions, checked without a GPU: the roofline of GPU rows
/// from a given calibration, the launch shape each variant's groups get, the shared-memory
/// budget, and calibration files refused like any input.
final class GPUPlanTests: XCTestCase {
    let h200 = GPUCalibration(gpuName: "test", gpuUUID: "GPU-0", gpuPCIBusId: "0000:00:00.0", driverVersion: "580",
                              smClockMHz: 1980, memoryClockMHz: 3201, readGBs: 4000, copyGBs: 3800, tensorTFlops: 640,
                              fmaTFlops: 60, l2Bytes: 60 << 20, arrayBytes: 4 << 30)

    func testRooflineUsesTensorPeakFor16BitAndFMAPeakForF32() {
        // MLRA-4 at TP 4, 512K tokens: 201326592 bytes, 21474836480 FLOPs (method §5).
        let bytes = 201_326_592.0, flops = 21_474_836_480.0
        XCTAssertEqual(h200.rooflineSeconds(bytes: bytes, flops: flops, cache: .bf16), bytes / 4000e9, accuracy: 1e-12)
        XCTAssertTrue(h200.memoryBound(bytes: bytes, flops: flops, cache: .bf16))
        // f32 doubles the bytes but runs on CUDA cores: 21.5 GFLOP / 60 TFLOP/s = 358 µs > 402 MB / 4 TB/s = 101 µs.
        XCTAssertEqual(h200.rooflineSeconds(bytes: 2 * bytes, flops: flops, cache: .f32), flops / 60e12, accuracy: 1e-12)
        XCTAssertFalse(h200.memoryBound(bytes: 2 * bytes, flops: flops, cache: .f32))
    }

    func testCalibrationFilesAreValidated() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpu-cal-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.json")
        try JSONEncoder().encode(h200).write(to: good)
        XCTAssertEqual(try GPUCalibration.load(path: good.path), h200)
        var bad = h200
        bad.readGBs = 0
        let zero = dir.appendingPathComponent("zero.json")
        try JSONEncoder().encode(bad).write(to: zero)
        XCTAssertThrowsError(try GPUCalibration.load(path: zero.path)) { XCTAssertTrue("\($0)".contains("positive")) }
        let cpu = dir.appendingPathComponent("cpu.json")
        try Data(#"{"threads": 1, "readGBs": 10}"#.utf8).write(to: cpu)
        XCTAssertThrowsError(try GPUCalibration.load(path: cpu.path)) { XCTAssertTrue("\($0)".contains("--device cuda"), "\($0)") }
    }

    func shape(_ config: AttentionConfig, tp: Int, dtype: StorageDType = .bf16, arch: String = "sm_80", budget: Int = 227 * 1024,
               tuning: GPUTuning = GPUTuning()) throws -> GPUAttention.LaunchShape {
        let layout = try config.layout()
        let shard = try layout.shard(tp: tp, rank: 0)
        let g = layout.kernelGroups(for: shard)[0]
        return try GPUAttention.launchShape(heads: g.heads, keyWidth: g.keyWidth, ropeWidth: g.ropeWidth, valueWidth: g.valueWidth,
                                            valueIsKey: g.valuesAreKeys, offsets: [g.keyOffset, g.ropeOffset, g.valueOffset],
                                            rowWidth: layout.cacheWidth(units: shard.units.count), dtype: dtype,
                                            arch: arch, sharedBudget: budget, tuning: tuning)
    }

    func latent(_ v: VariantName) -> AttentionConfig {
        AttentionConfig(variant: v, nEmbd: 64 * 128, nHead: 64, qLoraRank: 512, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64)
    }

    func testEachPaperShapeGetsTheMeasuredLaunch() throws {
        let mlra4 = try shape(latent(.mlra4), tp: 4)
        XCTAssertEqual([mlra4.path.rawValue, "\(mlra4.tile)", "\(mlra4.stages)", "\(mlra4.threads)"], ["warps", "128", "2", "256"])
        let mla = try shape(latent(.mla), tp: 1)
        XCTAssertEqual([mla.path.rawValue, "\(mla.tile)", "\(mla.stages)"], ["mma", "32", "3"])
        XCTAssertLessThanOrEqual(mla.sharedBytes, 227 * 1024)
        let gla2 = try shape(latent(.gla2), tp: 2)
        XCTAssertEqual([gla2.path.rawValue, "\(gla2.tile)"], ["mma", "64"])
        let gqa = try shape(AttentionConfig(variant: .gqa, nEmbd: 64 * 128, nHead: 64, headDim: 128, groupSize: 8), tp: 8)
        XCTAssertEqual([gqa.path.rawValue, "\(gqa.tile)", "\(gqa.threads)"], ["warps", "128", "128"])
        XCTAssertEqual(try shape(latent(.mlra4), tp: 4, dtype: .f32).path, .f32)
        // Head dims that are not multiples of 16 take the device reference on 16-bit caches.
        let odd = AttentionConfig(variant: .gqa, nEmbd: 6 * 40, nHead: 6, headDim: 40, groupSize: 3)
        XCTAssertEqual(try shape(odd, tp: 1).path, .plain)
        XCTAssertThrowsError(try shape(odd, tp: 1, tuning: GPUTuning(path: .mma))) { XCTAssertTrue("\($0)".contains("multiples of 16")) }
    }

    /// On Hopper the MLA family takes the wgmma kernel, with the largest tile whose stages fit
    /// in 227 KiB; GQA keeps the warp-register kernel. Forcing wgmma where it cannot run is one
    /// clear error.
    func testHopperGivesTheMLAFamilyTheWgmmaKernel() throws {
        let budget = KernelVariants.sharedBudget(arch: "sm_90a")
        let wgmma = GPUTuning(path: .wgmma)
        let mla = try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget, tuning: wgmma)
        XCTAssertEqual([mla.path.rawValue, "\(mla.tile)", "\(mla.stages)", "\(mla.threads)"], ["wgmma", "32", "2", "256"])
        // 1 KiB alignment + Q 72 KiB + 2 stages × 2 tiles × 36 KiB + P 8 KiB + 1 KiB of maxima and sums.
        XCTAssertEqual(mla.sharedBytes, 1024 + 73_728 + 147_456 + 8192 + 1024)
        XCTAssertLessThanOrEqual(mla.sharedBytes, budget)
        let gla2 = try shape(latent(.gla2), tp: 2, arch: "sm_90a", budget: budget, tuning: wgmma)
        XCTAssertEqual([gla2.path.rawValue, "\(gla2.tile)", "\(gla2.stages)"], ["wgmma", "64", "2"])
        let mlra4 = try shape(latent(.mlra4), tp: 4, arch: "sm_90a", budget: budget, tuning: wgmma)
        XCTAssertEqual([mlra4.path.rawValue, "\(mlra4.tile)", "\(mlra4.stages)"], ["wgmma", "64", "3"])
        XCTAssertEqual(try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget).path, .wgmma)
        XCTAssertEqual(try shape(latent(.mlra4), tp: 4, arch: "sm_90a", budget: budget).path, .wgmmaSolo)
        XCTAssertEqual(try shape(latent(.gla2), tp: 2, arch: "sm_90a", budget: budget).path, .wgmmaSolo)
        XCTAssertEqual(try shape(latent(.mla), tp: 1, arch: "sm_80", budget: budget).path, .mma)
        XCTAssertEqual(try shape(AttentionConfig(variant: .gqa, nEmbd: 64 * 128, nHead: 64, headDim: 128, groupSize: 8), tp: 8,
                                 arch: "sm_90a", budget: budget).path, .warps)
        let gqa = AttentionConfig(variant: .gqa, nEmbd: 64 * 128, nHead: 64, headDim: 128, groupSize: 8)
        XCTAssertThrowsError(try shape(gqa, tp: 8, arch: "sm_90a", budget: budget, tuning: wgmma)) {
            XCTAssertTrue("\($0)".contains("MLA-family"), "\($0)")
        }
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, tuning: wgmma)) { XCTAssertTrue("\($0)".contains("sm_90a"), "\($0)") }
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget, tuning: GPUTuning(tile: 48, path: .wgmma))) {
            XCTAssertTrue("\($0)".contains("32 or 64"), "\($0)")
        }
    }

    /// The solo layout takes the MLA-family groups whose values fit one warpgroup, with the most
    /// stages that fit and whose ring can hold warpgroup 1's accumulator for the merge.
    func testHopperGivesNarrowLatentsTheSoloWgmmaKernel() throws {
        let budget = KernelVariants.sharedBudget(arch: "sm_90a")
        let mlra4 = try shape(latent(.mlra4), tp: 4, arch: "sm_90a", budget: budget)
        XCTAssertEqual([mlra4.functionName, "\(mlra4.tile)", "\(mlra4.stages)"], ["decode_wgmma_solo", "64", "4"])
        // 1 KiB alignment + Q 64 × 192 × 2 + 2 rings × 4 stages × 64 × 192 × 2 + 512 bytes of maxima and sums.
        XCTAssertEqual(mlra4.sharedBytes, 1024 + 24_576 + 196_608 + 512)
        let gla2 = try shape(latent(.gla2), tp: 2, arch: "sm_90a", budget: budget)
        XCTAssertEqual(["\(gla2.tile)", "\(gla2.stages)"], ["64", "2"])
        // A 32-token tile with three stages cannot hold GLA-2's 64 × 256 f32 accumulator (60 KiB < 64 KiB).
        XCTAssertThrowsError(try shape(latent(.gla2), tp: 2, arch: "sm_90a", budget: budget,
                                       tuning: GPUTuning(tile: 32, stages: 3, path: .wgmmaSolo))) {
            XCTAssertTrue("\($0)".contains("wgmma-solo"), "\($0)")
        }
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaSolo))) {
            XCTAssertTrue("\($0)".contains("at most 256"), "\($0)")
        }
    }

    /// The query-image paths: the same kernels compiled with QPREP (decode_qprep beside them);
    /// wgmma-solo-q runs three warpgroups where the values are at most 128 wide, two otherwise,
    /// and --gpu-warps picks 2-4.
    func testQueryImagePaths() throws {
        let budget = KernelVariants.sharedBudget(arch: "sm_90a")
        let mlra4 = try shape(latent(.mlra4), tp: 4, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaSoloQ))
        XCTAssertEqual([mlra4.functionName, "\(mlra4.tile)", "\(mlra4.stages)", "\(mlra4.threads)"], ["decode_wgmma_solo", "64", "2", "384"])
        XCTAssertTrue(mlra4.defines.contains { $0 == ("QPREP", 1) } && mlra4.defines.contains { $0 == ("NWARPS", 12) })
        // 1 KiB alignment + Q 24 KiB + 3 rings × 2 stages × 64 × 192 × 2 + 2 × 512 bytes of maxima and sums.
        XCTAssertEqual(mlra4.sharedBytes, 1024 + 24_576 + 147_456 + 1024)
        let four = try shape(latent(.mlra4), tp: 4, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaSoloQ, warps: 16))
        XCTAssertEqual(["\(four.tile)", "\(four.stages)", "\(four.threads)"], ["64", "2", "512"])
        XCTAssertLessThanOrEqual(four.sharedBytes, budget)
        let gla2 = try shape(latent(.gla2), tp: 2, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaSoloQ))
        XCTAssertEqual(["\(gla2.tile)", "\(gla2.stages)", "\(gla2.threads)"], ["64", "2", "256"])
        let mla = try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaQ))
        XCTAssertEqual([mla.functionName, "\(mla.tile)", "\(mla.stages)", "\(mla.threads)"], ["decode_wgmma", "32", "2", "256"])
        XCTAssertTrue(mla.defines.contains { $0 == ("QPREP", 1) })
        let mla16 = try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget, tuning: GPUTuning(tile: 16, path: .wgmmaQ))
        XCTAssertEqual(["\(mla16.tile)", "\(mla16.stages)"], ["16", "4"])
        XCTAssertLessThanOrEqual(mla16.sharedBytes, budget)
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaSoloQ))) {
            XCTAssertTrue("\($0)".contains("at most 256"), "\($0)")
        }
        XCTAssertThrowsError(try shape(latent(.mlra4), tp: 4, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .wgmmaSoloQ, warps: 4))) {
            XCTAssertTrue("\($0)".contains("8, 12 or 16"), "\($0)")
        }
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, tuning: GPUTuning(path: .wgmmaQ))) { XCTAssertTrue("\($0)".contains("sm_90a"), "\($0)") }
        let gqa = AttentionConfig(variant: .gqa, nEmbd: 64 * 128, nHead: 64, headDim: 128, groupSize: 8)
        let gqaPDL = try shape(gqa, tp: 8, arch: "sm_90a", budget: budget, tuning: GPUTuning(path: .warpsPDL))
        XCTAssertEqual([gqaPDL.functionName, "\(gqaPDL.tile)", "\(gqaPDL.threads)"], ["decode_warps", "128", "128"])
        XCTAssertTrue(gqaPDL.defines.contains { $0 == ("PDL_COMBINE", 1) })
        XCTAssertThrowsError(try shape(gqa, tp: 8, tuning: GPUTuning(path: .warpsPDL))) { XCTAssertTrue("\($0)".contains("sm_90a"), "\($0)") }
    }

    func testSharedMemoryBudgetIsHonoured() throws {
        // On an A100's 163 KiB MLA still fits (2 stages), and nothing chosen exceeds the budget.
        let a100 = KernelVariants.sharedBudget(arch: "sm_80")
        let mla = try shape(latent(.mla), tp: 1, budget: a100)
        XCTAssertLessThanOrEqual(mla.sharedBytes, a100)
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, budget: 32 * 1024)) { XCTAssertTrue("\($0)".contains("shared memory")) }
        XCTAssertThrowsError(try shape(latent(.mla), tp: 1, tuning: GPUTuning(path: .warps))) { XCTAssertTrue("\($0)".contains("registers")) }
    }

    func testCacheSetsSpanFourTimesTheL2() throws {
        XCTAssertEqual(try MemoryFootprint.coldCacheSets(setBytes: 100 << 20, lastLevelCacheBytes: 60 << 20), 3)
        XCTAssertEqual(try MemoryFootprint.coldCacheSets(setBytes: 4 << 30, lastLevelCacheBytes: 60 << 20), 1)
    }

    /// Every kernel source compiles with NVRTC for sm_80 and sm_90a at every shape the
    /// self-test uses, with no warnings (NVRTC from the project's venv in CI: no GPU needed).
    func testKernelSourcesCompileWithoutWarnings() throws {
        let compiler = KernelCompiler.shared
        try compiler.load()
        for arch in ["sm_80", "sm_90a"] {
            for k in KernelVariants.all(arch: arch) {
                let (cubin, log) = try compiler.compile(k.source, arch: arch, defines: k.defines, flags: k.flags)
                XCTAssertFalse(cubin.isEmpty)
                XCTAssertEqual(log, "", "\(arch) \(k.label)")
            }
        }
    }

    /// cuBLAS is opened at run time like NVRTC: a bad MLRA_CUBLAS is one sentence naming
    /// what was tried and how to point at the library (issue 12).
    func testAMissingCuBLASIsOneSentence() throws {
        setenv("MLRA_CUBLAS", "/nonexistent/cublas", 1)
        defer { unsetenv("MLRA_CUBLAS") }
        XCTAssertThrowsError(try CUBLAS.load()) { error in
            let message = (error as? HarnessError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("cuBLAS not found (tried /nonexistent/cublas)"), message)
            XCTAssertTrue(message.contains("MLRA_CUBLAS"), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }

    /// NCCL is opened at run time too (issue 12): a bad MLRA_NCCL is one sentence naming
    /// what was tried and how to point at the library.
    func testAMissingNCCLIsOneSentence() throws {
        setenv("MLRA_NCCL", "/nonexistent/nccl", 1)
        defer { unsetenv("MLRA_NCCL") }
        XCTAssertThrowsError(try NCCL.load()) { error in
            let message = (error as? HarnessError)?.message ?? "\(error)"
            XCTAssertTrue(message.hasPrefix("--collective nccl: NCCL not found (tried /nonexistent/nccl)"), message)
            XCTAssertTrue(message.contains("MLRA_NCCL"), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }

    /// NCCL refuses two ranks of a communicator on one GPU; the harness finds the first such
    /// pair from the group's GPU UUIDs before it initialises NCCL.
    func testTwoRanksOnOneGPUAreFoundBeforeNCCL() {
        XCTAssertNil(NCCLCommunicator.sharedGPU(["GPU-a"]))
        XCTAssertNil(NCCLCommunicator.sharedGPU(["GPU-a", "GPU-b", "GPU-c", "GPU-d"]))
        let shared = NCCLCommunicator.sharedGPU(["GPU-a", "GPU-b", "GPU-c", "GPU-b", "GPU-a"])
        XCTAssertEqual(shared?.first, 1)
        XCTAssertEqual(shared?.second, 3)
        XCTAssertEqual(shared?.uuid, "GPU-b")
    }
}
