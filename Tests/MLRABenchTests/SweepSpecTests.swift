import Foundation
@testable import MLRABench
import MLRACuda
import MLRACore
import XCTest

final class SweepSpecTests: XCTestCase {
    func decode(_ json: String) throws -> SweepSpec { try JSONDecoder().decode(SweepSpec.self, from: Data(json.utf8)) }

    /// Grid keys beat defaults, defaults beat the built-in fallback; grids expand as cartesian products.
    func testGridsInheritDefaultsAndExpand() throws {
        let spec = try decode(#"""
            {"defaults": {"heads": [8], "contexts": [128], "head_dim": 32, "rope_dim": 16, "kv_ranks": [64], "steps": 4},
             "grids": [{"variants": ["mla", "mlra4"], "tp": [1, 2]},
                       {"variants": ["gqa"], "tp": [2], "contexts": [256, 512], "kv_heads": 2, "scopes": ["layer"]}]}
            """#)
        let configs = try spec.configurations(worldSize: 2)
        XCTAssertEqual(configs.count, 2 * 2 + 2)
        XCTAssertEqual(configs.map(\.variant), [.mla, .mla, .mlra4, .mlra4, .gqa, .gqa])
        XCTAssertTrue(configs.allSatisfy { $0.heads == 8 && $0.headDim == 32 && $0.steps == 4 })
        XCTAssertEqual(configs.filter { $0.variant == .gqa }.map(\.context), [256, 512])
        XCTAssertEqual(configs.first { $0.variant == .gqa }?.kvHeads, 2)
        XCTAssertEqual(configs.first { $0.variant == .gqa }?.ropeDim, 0, "the GQA family has no RoPE key column")
        XCTAssertEqual(configs.first!.scope, .kernel, "fallback scope")
        XCTAssertEqual(configs.first!.nEmbd, 8 * 32, "n_embd defaults to heads × head_dim")
    }

    /// Every setting that changes a measurement is part of the key; settings that do not
    /// apply to a configuration are not, so the same measurement is never taken twice.
    func testKeysSeparateWhatIsMeasuredDifferently() throws {
        var kernelCold = SweepSpec.Grid(); kernelCold.variants = [.mla]; kernelCold.coldCache = true
        var kernelWarm = kernelCold; kernelWarm.coldCache = false
        var moreSteps = kernelCold; moreSteps.steps = 50
        var modelA = SweepSpec.Grid(); modelA.variants = [.mla]; modelA.scopes = [.model]; modelA.vocabSize = 128
        var modelB = modelA; modelB.vocabSize = 256
        XCTAssertEqual(try SweepSpec(grids: [kernelCold, kernelWarm, moreSteps, modelA, modelB]).configurations(worldSize: 1).count, 5)
        // The GQA family has no q_lora_rank, and kernel scope no vocabulary: one configuration each.
        var gqa1 = SweepSpec.Grid(); gqa1.variants = [.gqa]; gqa1.qLoraRank = 64; gqa1.vocabSize = 100
        var gqa2 = gqa1; gqa2.qLoraRank = 128; gqa2.vocabSize = 200
        XCTAssertEqual(try SweepSpec(grids: [gqa1, gqa2]).configurations(worldSize: 1).count, 1)
        XCTAssertEqual(SweepConfig.keyColumns, try SweepSpec(grids: [gqa1]).configurations(worldSize: 1)[0].keyFields.map(\.0))
        XCTAssertTrue(SweepConfig.keyColumns.allSatisfy(ResultsSchema.columns.contains))
    }

    /// Issue 14: the cold cache is every scope's setting, cold by default; layer and model
    /// configurations that differ only in it are two configurations, told apart by the
    /// cold_cache column of the key.
    func testColdCacheAppliesToEveryScopeAndDefaultsToCold() throws {
        var g = SweepSpec.Grid(); g.variants = [.mla]; g.scopes = Scope.allCases
        XCTAssertEqual(try SweepSpec(grids: [g]).configurations(worldSize: 1).map(\.coldCache), [true, true, true])
        var warm = g; warm.coldCache = false
        let both = try SweepSpec(grids: [g, warm]).configurations(worldSize: 1)
        XCTAssertEqual(both.map(\.scope), Scope.allCases + Scope.allCases)
        XCTAssertEqual(both.map(\.coldCache), [true, true, true, false, false, false])
        for c in both {
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: c.keyFields)["cold_cache"], c.coldCache ? "true" : "false", c.label)
            XCTAssertEqual(c.appending, MemoryFootprint.Appending(steps: c.warmup + c.steps, coldCache: c.coldCache))
        }
    }

    /// Issue 11: "devices" is a grid key like "dtypes" (default cpu): it multiplies the
    /// grid (cuda configurations once per thread count: one host thread drives a GPU),
    /// enters the resume key, and cuda runs every scope (issue 12).
    func testDevicesExpandAsAGridKeyAndEnterTheResumeKey() throws {
        let spec = try decode(#"""
            {"defaults": {"heads": [4], "head_dim": 16, "rope_dim": 8, "kv_ranks": [64], "contexts": [64]},
             "grids": [{"variants": ["mla"], "devices": ["cpu", "cuda"], "scopes": ["kernel", "layer", "model"], "threads": [1, 2]}]}
            """#)
        XCTAssertTrue(SweepSpec.Grid.keys.contains("devices"))
        let configs = try spec.configurations(worldSize: 2, maxThreads: 2)
        XCTAssertEqual(configs.count, 3 * 2 + 3, "cpu: 3 scopes × 2 thread counts; cuda: 3 scopes")
        let cuda = configs.filter { $0.device == .cuda }
        XCTAssertEqual(cuda.map(\.threads), [1, 1, 1])
        XCTAssertNil(cuda.first { $0.scope == .kernel }!.skipReason())
        XCTAssertNil(cuda.first { $0.scope == .layer }!.skipReason())
        XCTAssertNil(cuda.first { $0.scope == .model }!.skipReason())
        XCTAssertTrue(configs.filter { $0.device == .cpu }.allSatisfy { $0.skipReason() == nil })
        // The same grid point on the two devices: two keys, the device column telling them apart.
        let cpuKernel = configs.first { $0.device == .cpu && $0.scope == .kernel && $0.threads == 1 }!
        let cudaKernel = cuda.first { $0.scope == .kernel }!
        XCTAssertNotEqual(cpuKernel.key, cudaKernel.key)
        XCTAssertNotEqual(cpuKernel.configID, cudaKernel.configID)
        XCTAssertTrue(SweepConfig.keyColumns.contains("device"))
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: cudaKernel.keyFields)["device"], "cuda")
        XCTAssertTrue(cudaKernel.label.hasSuffix("bf16 cuda"), cudaKernel.label)
        // Left out, a grid runs on the CPU; an empty list is refused like any other.
        XCTAssertEqual(Set(try SweepSpec(grids: [SweepSpec.Grid()]).configurations(worldSize: 1).map(\.device)), [.cpu])
        var none = SweepSpec.Grid(); none.devices = []
        XCTAssertThrowsError(try SweepSpec(grids: [none]).configurations(worldSize: 1)) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "grid 0: 'devices' is empty")
        }
        // A spec file naming a device the harness does not know is refused with the key.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("devices-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try #"{"defaults": {}, "grids": [{"devices": ["gpu"]}]}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SweepSpec.load(path: path)) {
            XCTAssertTrue("\($0)".contains("'grids.Index 0.devices.Index 0' has an invalid value"), "\($0)")
        }
    }

    func testSkipReasonsAndReplicas() throws {
        var g = SweepSpec.Grid()
        g.variants = [.mlra4, .mla]; g.tp = [1, 3, 4]; g.heads = [6]; g.kvRanks = [64]; g.batch = [1, 4]
        let configs = try SweepSpec(grids: [g]).configurations(worldSize: 4)
        func config(_ v: VariantName, tp: Int, batch: Int) -> SweepConfig {
            configs.first { $0.variant == v && $0.tp == tp && $0.batch == batch }!
        }
        XCTAssertEqual(config(.mlra4, tp: 3, batch: 1).skipReason(), "mlra4 cannot run at TP degree 3: the degree must be 1, 2, 4, 8, …")
        XCTAssertEqual(config(.mla, tp: 3, batch: 1).skipReason(), "TP degree 3 does not divide the world size 4")
        XCTAssertEqual(config(.mla, tp: 4, batch: 1).skipReason(), "mla cannot run at TP degree 4: its 6 heads per group are not divisible by 4")
        XCTAssertNil(config(.mlra4, tp: 4, batch: 1).skipReason())
        // A batch-1 latency run uses one group; batch 4 at tp 1 uses all four replicas.
        XCTAssertEqual(config(.mlra4, tp: 1, batch: 1).replicas, 1)
        XCTAssertEqual(config(.mlra4, tp: 1, batch: 4).replicas, 4)
        XCTAssertEqual(config(.mlra4, tp: 1, batch: 4).sequencesPerReplica, 1)
    }

    func testKernelScopeBeyondTheWorldIsOneDeviceShare() throws {
        var g = SweepSpec.Grid()
        g.variants = [.gqa]; g.tp = [8]; g.heads = [64]; g.kvHeads = 8; g.scopes = [.kernel, .layer]
        let configs = try SweepSpec(grids: [g]).configurations(worldSize: 4)
        XCTAssertTrue(configs[0].isDeviceShare)
        XCTAssertNil(configs[0].skipReason())
        XCTAssertFalse(configs[1].isDeviceShare)
        XCTAssertEqual(configs[1].skipReason(), "TP degree 8 does not divide the world size 4")
    }

    func testMalformedGridsAreRejected() throws {
        var g = SweepSpec.Grid()
        g.contexts = [0]
        XCTAssertThrowsError(try SweepSpec(grids: [g]).configurations(worldSize: 1)) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "grid 0: 'contexts' has 0; values must be at least 1")
        }
        g = SweepSpec.Grid(); g.dtypes = ["fp8"]
        XCTAssertThrowsError(try SweepSpec(grids: [g]).configurations(worldSize: 1)) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "unknown dtype 'fp8'; expected one of f32, f16, bf16")
        }
        XCTAssertThrowsError(try SweepSpec(grids: []).configurations(worldSize: 1))
    }

    /// Every preset covers what it promises and prints as a spec that reads back identically.
    func testPresetsRoundTripAsSpecFiles() throws {
        let quick = try SweepPreset.quick.spec(worldSize: 4).configurations(worldSize: 4)
        XCTAssertEqual(Set(quick.map(\.variant)), Set(VariantName.allCases))
        XCTAssertEqual(Set(quick.map(\.tp)), [1, 2, 4])
        XCTAssertEqual(Set(quick.map(\.scope)), Set(Scope.allCases))
        XCTAssertTrue(quick.allSatisfy { $0.skipReason() == nil })
        for preset in SweepPreset.allCases {
            let spec = preset.spec(worldSize: 8)
            let again = try decode(spec.json())
            XCTAssertEqual(try again.configurations(worldSize: 8).map(\.key), try spec.configurations(worldSize: 8).map(\.key))
        }
        let paper = try SweepPreset.paper.spec(worldSize: 1).configurations(worldSize: 1)
        XCTAssertEqual(Set(paper.map { "\($0.variant.rawValue)@\($0.tp)" }), ["gqa@8", "mla@1", "gla2@2", "mlra4@4"])
        XCTAssertTrue(paper.allSatisfy { $0.isDeviceShare || $0.tp == 1 })
        // paper-gpu: the same four kernel shares on cuda, and layer scope at TP 1, plus the
        // paper's TP where the job has the ranks (GQA's 8 not in a 4-rank job).
        let gpu = try SweepPreset.paperGPU.spec(worldSize: 4).configurations(worldSize: 4)
        XCTAssertTrue(gpu.allSatisfy { $0.device == .cuda && $0.dtype == .bf16 && $0.skipReason() == nil })
        XCTAssertEqual(Set(gpu.filter { $0.scope == .kernel }.map { "\($0.variant.rawValue)@\($0.tp)" }), ["gqa@8", "mla@1", "gla2@2", "mlra4@4"])
        XCTAssertEqual(Set(gpu.filter { $0.scope == .layer }.map { "\($0.variant.rawValue)@\($0.tp)" }),
                       ["gqa@1", "mla@1", "gla2@1", "gla2@2", "mlra4@1", "mlra4@4"])
        XCTAssertEqual(Set(gpu.map(\.context)), [131_072, 524_288, 1_048_576, 2_097_152])
        // throughput-gpu: the paper's batched layouts on cuda, at the same global batch for
        // every layout (throughput compares layouts at equal work), TP capped by the job.
        let batched = try SweepPreset.throughputGPU.spec(worldSize: 4).configurations(worldSize: 4)
        XCTAssertTrue(batched.allSatisfy { $0.device == .cuda && $0.scope == .layer && $0.heads == 128 && $0.nEmbd == 7168 })
        XCTAssertEqual(Set(batched.map { "\($0.variant.rawValue)@\($0.tp)x\($0.replicas)" }), ["mla@1x4", "gla2@2x2", "mlra4@4x1", "gqa@4x1"])
        XCTAssertEqual(Set(batched.map(\.batch)), [32, 256])
    }

    func testAppendOnlyCSVDropsATornLastRowAndRefusesOtherSchemas() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("r-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "a,b\n1,2\n3,".write(toFile: path, atomically: true, encoding: .utf8)
        let f = try AppendOnlyCSV(path: path, columns: ["a", "b"])
        try f.append([["a": "5", "b": "x,y"]])
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "a,b\n1,2\n5,\"x,y\"\n")
        XCTAssertEqual(AppendOnlyCSV.readRows(path: path).map { $0["b"]! }, ["2", "x,y"])
        XCTAssertThrowsError(try AppendOnlyCSV(path: path, columns: ["a", "c"])) {
            XCTAssertTrue(($0 as? HarnessError)?.message.contains("has another schema") ?? false)
        }
    }

    /// A sweep CSV of schema 1 (no calib_fma_width, kernel_isa) is refused on resume,
    /// and the error names both versions; the file is left as it was.
    func testResumingASchema1CSVIsRefusedNamingBothVersions() throws {
        XCTAssertEqual(ResultsSchema.version, "7")
        let fmaAt = try XCTUnwrap(ResultsSchema.columns.firstIndex(of: "calib_fma_width"))
        let isaAt = try XCTUnwrap(ResultsSchema.columns.firstIndex(of: "kernel_isa"))
        XCTAssertEqual(ResultsSchema.columns[fmaAt - 1], "calib_fma_gflops")
        XCTAssertEqual(ResultsSchema.columns[isaAt - 2], "threads", "schema 2 put kernel_isa after threads; schema 4, device between them")
        let v1 = ResultsSchema.columns.filter { $0 != "calib_fma_width" && $0 != "kernel_isa" }
        let row = v1.map { $0 == "schema_version" ? "1" : "" }.joined(separator: ",")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("v1-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = v1.joined(separator: ",") + "\n" + row + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AppendOnlyCSV(path: path, columns: ResultsSchema.columns)) {
            let message = ($0 as? HarnessError)?.message ?? ""
            XCTAssertTrue(message.contains("has another schema (its header differs from this harness's schema 7, the file's rows are schema 1)"),
                          message)
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), text)
    }

    /// Schema 4: the device and the GPU's columns, where docs/csv-schema.md puts them; a
    /// schema-3 file (the previous header) is refused on resume, left byte for byte, with
    /// what to do.
    func testSchema4HeaderAndASchema3FileIsNotAppendedTo() throws {
        let columns = ResultsSchema.columns
        func after(_ column: String) -> String? { columns.firstIndex(of: column).map { columns[$0 - 1] } }
        XCTAssertEqual(after("device"), "threads")
        XCTAssertEqual(after("kernel_isa"), "device")
        XCTAssertEqual(after("gpu_kernel"), "kernel_math", "schema 7 put kernel_math between them")
        XCTAssertEqual(after("kernel_math"), "kernel_isa")
        XCTAssertEqual(Array(columns.drop { $0 != "gpu_name" }.prefix(7)),
                       ["gpu_name", "gpu_uuid", "gpu_pci_bus_id", "gpu_driver", "gpu_sm_clock_mhz", "gpu_mem_clock_mhz", "gpu_ranks_sharing"])
        XCTAssertEqual(after("timing_mode"), "gpu_ranks_sharing")
        XCTAssertEqual(Array(columns.drop { $0 != "calib_source" }.prefix(5)),
                       ["calib_source", "gpu_calib_read_gbs", "gpu_calib_copy_gbs", "gpu_calib_tensor_tflops", "gpu_calib_fma_tflops"])
        XCTAssertEqual(Set(columns).count, columns.count, "no column twice")

        let schema5Only: Set = ["noise_cv_max", "noise_lost_fraction_max", "noise_top_hz"]
        let schema4Only: Set = ["device", "gpu_kernel", "gpu_name", "gpu_uuid", "gpu_pci_bus_id", "gpu_driver", "gpu_sm_clock_mhz",
                                "gpu_mem_clock_mhz", "gpu_ranks_sharing", "gpu_calib_read_gbs", "gpu_calib_copy_gbs",
                                "gpu_calib_tensor_tflops", "gpu_calib_fma_tflops"]
        let message = try refusedOnResume(columns.filter { !schema4Only.contains($0) && !schema5Only.contains($0) }, version: "3")
        XCTAssertTrue(message.contains("its header differs from this harness's schema 7, the file's rows are schema 3"), message)
        XCTAssertTrue(message.contains("the file is left unchanged; write to a new file (the analysis reads the old and the new file together)"),
                      message)
    }

    /// Resumes into a file of an older schema (header `old`, one row of `version`): the
    /// refusal's message; the file must be left byte for byte.
    func refusedOnResume(_ old: [String], version: String) throws -> String {
        let text = old.joined(separator: ",") + "\n" + old.map { $0 == "schema_version" ? version : "" }.joined(separator: ",") + "\n"
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("v\(version)-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var message = ""
        XCTAssertThrowsError(try AppendOnlyCSV(path: path, columns: ResultsSchema.columns)) { message = ($0 as? HarnessError)?.message ?? "" }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), text)
        return message
    }

    /// Schema 5: the run's noise probe summary after date_utc; a schema-4 file is refused on
    /// resume, byte for byte as it was.
    func testSchema5PutsTheNoiseProbeAfterTheDateAndRefusesASchema4File() throws {
        let columns = ResultsSchema.columns
        XCTAssertEqual(Array(columns.drop { $0 != "date_utc" }.prefix(4)),
                       ["date_utc", "noise_cv_max", "noise_lost_fraction_max", "noise_top_hz"])
        let message = try refusedOnResume(columns.filter { !$0.hasPrefix("noise_") }, version: "4")
        XCTAssertTrue(message.contains("its header differs from this harness's schema 7, the file's rows are schema 4"), message)
    }

    /// Schema 6: the TP group's throughput and the job's under two names, where
    /// `tokens_per_s` (the job's, on every group's row) was, and the GPU layer's
    /// `projection_us_median`; a schema-5 file is refused on resume, byte for byte as it was.
    func testSchema6SplitsTheThroughputAndRefusesASchema5File() throws {
        let columns = ResultsSchema.columns
        XCTAssertFalse(columns.contains("tokens_per_s"), "one name for two figures made sums over rows overcount")
        XCTAssertEqual(Array(columns.drop { $0 != "imbalance_us_median" }.prefix(5)),
                       ["imbalance_us_median", "projection_us_median", "group_tokens_per_s", "job_tokens_per_s", "achieved_gbs"])
        let schema5 = columns.filter { $0 != "job_tokens_per_s" && $0 != "projection_us_median" }
            .map { $0 == "group_tokens_per_s" ? "tokens_per_s" : $0 }
        let message = try refusedOnResume(schema5, version: "5")
        XCTAssertTrue(message.contains("its header differs from this harness's schema 7, the file's rows are schema 5"), message)
    }

    /// Schema 7: the math the CPU kernel's products ran in after kernel_isa, the check's
    /// tolerance after its largest error; a schema-6 file is refused on resume, byte for byte as it was.
    func testSchema7RecordsTheMathAndTheToleranceAndRefusesASchema6File() throws {
        let columns = ResultsSchema.columns
        XCTAssertEqual(Array(columns.drop { $0 != "kernel_isa" }.prefix(3)), ["kernel_isa", "kernel_math", "gpu_kernel"])
        XCTAssertEqual(Array(columns.drop { $0 != "validation_max_err" }.prefix(4)),
                       ["validation_max_err", "validation_atol", "validation_rtol", "warmup_steps"])
        XCTAssertTrue(SweepConfig.keyColumns.contains("kernel_math"), "a bf16-math row is another measurement than an f32 one")
        let message = try refusedOnResume(columns.filter { !["kernel_math", "validation_atol", "validation_rtol"].contains($0) }, version: "6")
        XCTAssertTrue(message.contains("its header differs from this harness's schema 7, the file's rows are schema 6"), message)
    }

    /// The schema is the row type: its coding keys are the columns, the GPU's columns are the
    /// device's own list, and a column set by name must be one of them.
    func testTheRowTypeIsTheSchema() throws {
        XCTAssertEqual(ResultsSchema.columns, SweepRow.CodingKeys.allCases.map(\.rawValue))
        let gpuAt = try XCTUnwrap(ResultsSchema.columns.firstIndex(of: CUDADevice.csvColumns[0]))
        XCTAssertEqual(Array(ResultsSchema.columns[gpuAt..<(gpuAt + CUDADevice.csvColumns.count)]), CUDADevice.csvColumns)
        var row = SweepRow()
        try row.set(["variant": "mla", "repeat": "2"])
        row.job_tokens_per_s = "12.5"
        XCTAssertEqual(row.variant, "mla"); XCTAssertEqual(row.repeat, "2")
        XCTAssertEqual(Set(row.cells.keys), Set(ResultsSchema.columns), "every column, empty where not set")
        XCTAssertEqual(row.cells["job_tokens_per_s"], "12.5")
        XCTAssertThrowsError(try row.set(["tokens_per_s": "1"])) {
            XCTAssertEqual(($0 as? HarnessError)?.message, "internal: 'tokens_per_s' is not a column of the sweep's CSV schema 7")
        }
        XCTAssertEqual(try JSONDecoder().decode(SweepRow.self, from: JSONEncoder().encode(row)), row)
    }

    func testTheNearestKnownKeyIsOnlyNamedWhenItIsASlip() {
        let keys = SweepSpec.Grid.keys
        XCTAssertEqual(SweepSpec.nearest("head", in: keys), "heads")
        XCTAssertEqual(SweepSpec.nearest("context", in: keys), "contexts")
        XCTAssertEqual(SweepSpec.nearest("kv_rank", in: keys), "kv_ranks")
        XCTAssertEqual(SweepSpec.nearest("Variants", in: keys), "variants")
        XCTAssertNil(SweepSpec.nearest("temperature", in: keys))
    }
}
