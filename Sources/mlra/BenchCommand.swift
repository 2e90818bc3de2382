import ArgumentParser
import Foundation
import MLRABench
import MLRACore

/// `mlra bench`: times one configuration in kernel scope on one rank of the plan
/// and reports it against the measured roofline.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the decode attention kernel for one configuration against this machine's roofline.")

    @Option(help: "Attention variant.") var variant: VariantName
    @Option(help: "Tensor-parallel degree of the plan.") var tp = 1
    @Option(help: "Rank of the plan to run (default: the busiest rank).") var rank: Int?
    @Option(help: "Context length L (cached tokens).") var context: Int
    @Option(help: "Sequences on this rank (batch).") var batch = 1
    @Option(help: "Query heads h.") var heads: Int
    @Option(name: .customLong("head-dim"), help: "d_n (MLA family) or d_h (GQA family).") var headDim = 128
    @Option(name: .customLong("rope-dim"), help: "d_r (MLA family).") var ropeDim = 64
    @Option(name: .customLong("kv-rank"), help: "d_c, kv_lora_rank (MLA family).") var kvRank = 512
    @Option(name: .customLong("kv-heads"), help: "KV heads (GQA family); group size = heads / kv-heads.") var kvHeads: Int?
    @Option(name: .customLong("kv-dtype"), help: "Cache storage: f32, f16, bf16.") var kvDtype: StorageDType = .f32
    @Option(help: "Kernel threads.") var threads = 1
    @Option(help: "Untimed warm-up steps.") var warmup = 3
    @Option(help: "Timed steps.") var steps = 20
    @Flag(inversion: .prefixedNo, help: "Rotate cache sets spanning ≥ 4 × LLC (default on).") var coldCache = true
    @Option(help: "tiled or plain.") var kernel: KernelChoice = .tiled
    @Option(help: "Rows per tile of the tiled kernel.") var tile = TiledAttentionKernel.defaultTile
    @Option(help: "Inner loops of the tiled kernel: avx512 or portable (default: the fastest this CPU runs).")
    var isa: KernelISA = .detected
    @Option(help: KernelMath.help) var math: KernelMath = .f32
    @Option(name: .customLong("simd-max-heads"),
            help: "Groups with at most this many heads take a small-group path (AVX-512 for 2–16 heads, else Swift SIMD); 0: large-group loops only.")
    var simdMaxHeads = TiledAttentionKernel.defaultSIMDMaxHeads
    @Option(name: .customLong("simd-tile"), help: "Rows per sub-tile of the SIMD path.") var simdTile = TiledAttentionKernel.defaultSIMDTile
    @Option(help: "Calibration JSON from 'mlra calibrate --format json' (default: a quick calibration now).")
    var calibration: String?
    @Option(name: .customLong("gpu-calibration"),
            help: "With --device cuda: GPU calibration JSON from 'mlra calibrate --device cuda --format json' (default: a quick one now).")
    var gpuCalibration: String?
    @Option(help: "table or csv.") var format: OutputFormat = .table
    @OptionGroup var gpu: GPUOptions
    @Flag(name: .customLong("full-check"), inversion: .prefixedNo,
          help: "With --device cuda, also check the kernel against the device reference at the full context (default on).")
    var fullCheck = true
    @Flag(name: .customLong("inject-validation-error"), help: .hidden) var injectValidationError = false

    enum KernelChoice: String, ExpressibleByArgument, CaseIterable { case tiled, plain }

    func validate() throws {
        try validateThreads(threads)
        for (v, n) in [(tp, "--tp"), (context, "--context"), (batch, "--batch"), (heads, "--heads"),
                       (steps, "--steps"), (tile, "--tile"), (simdTile, "--simd-tile")] where v < 1 {
            throw ValidationError("\(n) must be at least 1, got \(v)")
        }
        for (v, n, limit) in [(tile, "--tile", TiledAttentionKernel.maxTile), (simdTile, "--simd-tile", TiledAttentionKernel.maxTile),
                              (steps, "--steps", TimingProtocol.maxSteps), (warmup, "--warmup", TimingProtocol.maxSteps)] where v > limit {
            throw ValidationError("\(n) \(v) is beyond the largest supported value, \(limit)")
        }
        guard simdMaxHeads >= 0 else { throw ValidationError("--simd-max-heads must be at least 0, got \(simdMaxHeads)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0, got \(warmup)") }
        if let rank, rank < 0 || rank >= tp { throw ValidationError("--rank \(rank) must lie in 0..<\(tp) (--tp)") }
        if variant == .gqa && kvHeads == nil { throw ValidationError("--variant gqa needs --kv-heads") }
        guard isa.isSupported else { throw ValidationError("--isa \(isa): this CPU does not run it") }
        try math.validate()
        if gpuCalibration != nil && gpu.device != .cuda {
            throw ValidationError("--gpu-calibration applies to --device cuda (the CPU's roofline is --calibration)")
        }
        // The GPU calibration file is --gpu-calibration, as in the sweep. Bench once read it from
        // --calibration with --device cuda; that spelling still runs, with a warning.
        if gpu.device == .cuda { _ = try renamed(gpuCalibration, "--gpu-calibration", old: calibration, "--calibration with --device cuda") }
    }

    func run() throws {
        if gpu.device == .cuda { return try runCUDA() }
        let (layout, rank, shard) = try plannedShard()
        let cost = try checkingFlags { try DecodeCost(layout, tp: tp, dtype: kvDtype) }
        // A calibration file is read (and validated) first: its LLC size decides the cold-cache sets.
        let calFile = try calibration.map(Calibration.load)
        // Refuse before calibrating or allocating: what KernelWorkload will hold.
        let need = try KernelWorkload.footprint(layout: layout, tp: tp, rank: rank, dtype: kvDtype, context: context, sequences: batch,
                                                coldCache: coldCache, llcBytes: calFile?.llcBytes ?? Calibration.lastLevelCacheBytes())
        try MemoryBudget.check(need, ranks: 1, what: "this bench")

        let cal = try calFile ?? Calibration.measure(threads: threads, quick: true)
        ResidentMemory.resetPeak()
        let baselineRSS = ResidentMemory.currentBytes ?? 0

        let k: AttentionKernel = kernel == .tiled ? try TiledAttentionKernel(threads: threads, tile: tile, simdMaxHeads: simdMaxHeads, simdTile: simdTile, isa: isa, math: math)
            : PlainAttentionKernel()
        // Validated before it is timed, as every sweep row is: the kernel against the
        // plain kernel on this rank's shard and dtype (Validation.kernel, the sweep's check).
        let check = Validation.kernel(layout: layout, shard: shard, dtype: kvDtype, context: context, kernel: k,
                                      injectError: injectValidationError)
        if let v = check.violation {
            throw HarnessError("validation failed for \(variant.rawValue) kernel tp=\(tp) rank \(rank) L=\(context) \(kvDtype.rawValue): \(v)")
        }
        let work = try KernelWorkload(layout: layout, shard: shard, dtype: kvDtype, context: context, sequences: batch,
                                      coldCache: coldCache, kernel: k, llcBytes: cal.llcBytes)
        for _ in 0..<warmup { work.step() }
        var samples = [Double]()
        samples.reserveCapacity(steps)
        for _ in 0..<steps {
            let t0 = monotonicSeconds()
            work.step()
            samples.append(monotonicSeconds() - t0)
        }
        let peakRSS = ResidentMemory.peakBytes ?? 0
        let out = work.lastOutputs
        guard out.allSatisfy(\.isFinite) else { throw HarnessError("the kernel produced non-finite outputs") }

        let stats = SampleStats(samples)
        let bytes = Double(work.bytesPerStep), flops = Double(work.flopsPerStep)
        let bound = cal.rooflineSeconds(bytes: bytes, flops: flops)
        let row = BenchRow(
            variant: variant.rawValue, tp: tp, rank: rank, context: context, batch: batch, kvDtype: kvDtype.rawValue,
            threads: threads, kernel: kernel == .tiled ? "tiled-\(isa)" : "plain", tile: tile, coldCache: coldCache, cacheSets: work.cacheSets,
            warmup: warmup, steps: steps, kernelMath: check.math, maxError: check.maxError,
            tolerance: check.tolerance ?? .kernelAgreement, stats: stats, bytes: bytes, flops: flops,
            busiestBytes: Double(try cost.kernelBytes(context: context, sequences: batch)),
            cal: cal, boundSeconds: bound, memoryBound: bytes / (cal.bandwidthGBs * 1e9) >= flops / (cal.peakGFlops * 1e9),
            peakRSS: peakRSS, baselineRSS: baselineRSS, residentBytes: work.residentBytes)
        print(format == .csv ? BenchRow.csvHeader + "\n" + row.csv : row.table)
    }

    /// The layer, rank and shard the flags name; one the plans cannot form is a usage error.
    func plannedShard() throws -> (layout: any AttentionLayout, rank: Int, shard: RankShard) {
        try checkingFlags {
            let layout = try layerConfig().layout()
            let rank = try self.rank ?? KernelWorkload.busiestRank(layout, tp: tp)
            return (layout, rank, try layout.shard(tp: tp, rank: rank))
        }
    }

    func layerConfig() throws -> AttentionConfig {
        let shape = LayerShape(variant: variant, heads: heads, headDim: headDim, ropeDim: ropeDim, kvRank: kvRank, qLoraRank: kvRank,
                               kvHeads: .exactly(kvHeads), nEmbd: try CheckedSize.product([heads, headDim], "--heads × --head-dim"))
        guard shape.kvHeadsDivideHeads else { throw HarnessError("--heads \(heads) is not divisible by --kv-heads \(shape.kvHeads)") }
        return shape.config
    }
}

/// One bench result: a table for eyes, a CSV row for tools (units in the names).
struct BenchRow {
    let variant: String, tp: Int, rank: Int, context: Int, batch: Int, kvDtype: String
    let threads: Int, kernel: String, tile: Int, coldCache: Bool, cacheSets: Int, warmup: Int, steps: Int
    /// The math the kernel's products ran in (`kernel_math`).
    let kernelMath: ProductMath
    /// Largest |x − ref| of the check before timing (it passed: a failure stops the bench), and its tolerance.
    let maxError: Double, tolerance: Tolerance
    let stats: SampleStats
    let bytes: Double, flops: Double, busiestBytes: Double
    let cal: Calibration
    let boundSeconds: Double, memoryBound: Bool
    let peakRSS: Int, baselineRSS: Int, residentBytes: Int

    var mode: String { coldCache ? "cold" : "warm" }
    var gbs: Double { bytes / stats.median / 1e9 }
    var gflops: Double { flops / stats.median / 1e9 }
    var fraction: Double { boundSeconds / stats.median }
    /// Peak RSS growth over the process before the workload, against what it must hold.
    var rssRatio: Double { Double(peakRSS - baselineRSS) / Double(residentBytes) }

    /// The quantities a sweep row also has carry the sweep's names (docs/csv-schema.md), so
    /// one reader takes both; the rest (rank, tile, cache_sets, memory) are bench's own.
    static let csvHeader = "variant,tp,rank,context,batch,kv_dtype,threads,kernel,kernel_math,tile,cold_cache,cache_sets,warmup_steps,timed_steps,"
        + "validation,validation_max_err,validation_atol,validation_rtol,"
        + "step_us_median,step_us_p10,step_us_p90,step_us_min,step_us_max,kernel_bytes_per_step,kernel_flops_per_step,"
        + "achieved_gbs,achieved_gflops,calib_threads,calib_read_gbs,calib_triad_gbs,calib_sgemm_gflops,calib_fma_gflops,calib_fma_width,blas_core,"
        + "roofline_us,roofline_limit,roofline_fraction,peak_rss_bytes,baseline_rss_bytes,resident_needed_bytes,rss_ratio"

    var csv: String {
        let us = { (s: Double) in String(format: "%.2f", s * 1e6) }
        return [variant, "\(tp)", "\(rank)", "\(context)", "\(batch)", kvDtype, "\(threads)", kernel, kernelMath.rawValue, "\(tile)",
                coldCache ? "true" : "false", "\(cacheSets)", "\(warmup)", "\(steps)", "pass", String(format: "%.3e", maxError),
                String(format: "%.3g", tolerance.atol), String(format: "%.3g", tolerance.rtol), us(stats.median), us(stats.p10), us(stats.p90), us(stats.min), us(stats.max),
                String(format: "%.0f", bytes), String(format: "%.0f", flops),
                String(format: "%.2f", gbs), String(format: "%.2f", gflops),
                "\(cal.threads)", String(format: "%.2f", cal.readGBs), String(format: "%.2f", cal.triadGBs),
                String(format: "%.2f", cal.sgemmGFlops), String(format: "%.2f", cal.fmaGFlops), cal.fmaWidth, cal.blasCore,
                us(boundSeconds), memoryBound ? "bandwidth" : "compute", String(format: "%.3f", fraction),
                "\(peakRSS)", "\(baselineRSS)", "\(residentBytes)", String(format: "%.3f", rssRatio)].joined(separator: ",")
    }

    var table: String {
        let mb = { (b: Int) in String(format: "%.1f MB", Double(b) / 1e6) }
        var lines = [
            "mlra \(HarnessVersion.string) bench: \(variant) tp \(tp) rank \(rank), L \(context), batch \(batch), \(kvDtype) cache, "
                + "\(kernel) kernel (tile \(tile)), \(threads) thread(s), \(mode) cache (\(cacheSets) set(s)), \(steps) steps",
            String(format: "  time per step       median %.1f us   p10 %.1f   p90 %.1f   min %.1f   max %.1f",
                   stats.median * 1e6, stats.p10 * 1e6, stats.p90 * 1e6, stats.min * 1e6, stats.max * 1e6),
            String(format: "  validated           max |error| %.3g against the plain kernel (atol %.3g, rtol %.3g; %@ products)",
                   maxError, tolerance.atol, tolerance.rtol, kernelMath.rawValue as NSString),
            String(format: "  bytes per step      %.0f (%.2f MB)", bytes, bytes / 1e6),
            String(format: "  FLOPs per step      %.0f (%.3f GFLOP, %.1f FLOP/byte)", flops, flops / 1e9, flops / bytes),
            String(format: "  achieved            %.1f GB/s   %.1f GFLOP/s", gbs, gflops),
            String(format: "  calibration         read %.1f GB/s, triad %.1f GB/s, sgemm %.1f GFLOP/s (OpenBLAS %@), FMA loop %.1f GFLOP/s (%@)",
                   cal.readGBs, cal.triadGBs, cal.sgemmGFlops, cal.blasCore as NSString, cal.fmaGFlops, cal.fmaWidth as NSString),
            String(format: "  roofline bound      %.1f us (%@-bound)   fraction reached %.3f",
                   boundSeconds * 1e6, (memoryBound ? "bandwidth" : "compute") as NSString, fraction),
            "  resident memory     peak \(mb(peakRSS)), before workload \(mb(baselineRSS)), workload needs \(mb(residentBytes)) "
                + "(cache sets + queries); growth / needed = \(String(format: "%.3f", rssRatio))",
        ]
        if busiestBytes != bytes { lines.append(String(format: "  note: the busiest rank streams %.0f bytes per step", busiestBytes)) }
        return lines.joined(separator: "\n")
    }
}
