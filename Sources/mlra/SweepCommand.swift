import ArgumentParser
import Foundation
import MLRABench
import MLRACore
import MLRACuda
import MLRAParallel

/// `mlra sweep`: the harness's main job. Run it under mpirun; rank 0 writes the CSV.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Sweep variants × contexts × TP degrees × latent ranks × heads × dtypes × batch × scope × threads × devices into a CSV.",
        discussion: """
            The grid comes from --preset, --spec FILE.json, or the grid flags (flags override the preset's or file's values \
            in every grid). TP degrees run as sub-communicators of one job: with N ranks and degree t, the N/t groups are \
            data-parallel replicas that split the batch. --devices cuda runs on each rank's GPU (node-local rank mod \
            visible GPUs) in every scope, its all-reduces by --collective. Rerunning with the same --out \
            resumes. --dry-run lists the configurations (with --out: which a resume skips), the skips and their reasons, \
            predicted memory per rank and time (from --calibration or the calibration stored beside --out), and totals, \
            without measuring or writing anything. Schema: docs/csv-schema.md.
            """)

    @Option(help: "Built-in grid: quick, paper, paper-gpu, throughput or throughput-gpu.") var preset: SweepPreset?
    @Option(help: "Spec file (JSON; see the README).") var spec: String?
    @Flag(name: .customLong("print-spec"), help: "Print the resolved spec as JSON and exit.") var printSpec = false
    @Flag(name: .customLong("dry-run"),
          help: "List the expanded grid (skips and their reasons, predicted memory per rank and time) without measuring or writing anything.")
    var dryRun = false
    @Option(help: "--dry-run's listing: table or csv.") var format: OutputFormat?

    @Option(help: "Comma-separated variants.") var variants: String?
    @Option(help: "Comma-separated context lengths.") var contexts: String?
    @Option(help: "Comma-separated TP degrees.") var tp: String?
    @Option(name: .customLong("kv-ranks"), help: "Comma-separated kv_lora_rank values (MLA family).") var kvRanks: String?
    @Option(help: "Comma-separated head counts.") var heads: String?
    @Option(name: .customLong("kv-dtypes"), help: "Comma-separated cache dtypes (f32, f16, bf16).") var kvDtypes: String?
    @Option(name: .customLong("dtypes"), help: .hidden) var kvDtypesOld: String?
    @Option(help: "Comma-separated global batch sizes.") var batch: String?
    @Option(help: "Comma-separated scopes (kernel, layer, model).") var scopes: String?
    @Option(help: "Comma-separated thread counts per rank (cpu configurations).") var threads: String?
    @Option(help: "Comma-separated devices: cpu, cuda (cuda: kernel scope on each rank's GPU).") var devices: String?
    @Option(name: .customLong("head-dim"), help: "d_n / d_h.") var headDim: Int?
    @Option(name: .customLong("rope-dim"), help: "d_r.") var ropeDim: Int?
    @Option(name: .customLong("q-rank"), help: "q_lora_rank.") var qRank: Int?
    @Option(name: .customLong("kv-heads"), help: "KV heads of gqa.") var kvHeads: Int?
    @Option(name: .customLong("n-embd"), help: "Model width (default heads × head-dim).") var nEmbd: Int?
    @Option(name: .customLong("n-layer"), help: "Layers in model scope.") var nLayer: Int?
    @Option(help: "Untimed warm-up steps.") var warmup: Int?
    @Option(help: "Timed steps.") var steps: Int?
    @Flag(inversion: .prefixedNo, help: "Every scope: rotate cache sets spanning ≥ 4 × LLC (default: the spec's, else on).") var coldCache: Bool?
    @Option(help: "cpu configurations: products of the tiled kernel on bf16 caches, f32, bf16 or auto as in bench (default: the spec's \"math\", else f32).")
    var math: KernelMath?

    @Option(help: "CSV to write (appended to; resumes). Not needed with --print-spec.") var out: String?
    @Option(help: "Also write every timed step to this CSV.") var samples: String?
    @Option(help: "auto, on or off: time the ranks of a group one after another (for oversubscribed nodes).")
    var isolate: IsolateChoice = .auto
    @Option(name: .customLong("array-task"), help: "Run only configurations with index mod --array-count == this.") var arrayTask = 0
    @Option(name: .customLong("array-count"), help: "Number of array tasks splitting the sweep.") var arrayCount = 1
    @Option(help: "Calibration JSON from 'mlra calibrate --format json' (default: measure now).") var calibration: String?
    @Flag(help: "Measure (or take --calibration) again and replace the calibration stored beside --out (by default the CSV's rows all share the first run's).")
    var recalibrate = false
    @Option(name: .customLong("gpu-calibration"),
            help: "GPU calibration JSON from 'mlra calibrate --device cuda --format json' for cuda rows (default: measure on rank 0's GPU).")
    var gpuCalibration: String?
    @Option(help: "Measure every configuration this many times, interleaved: the whole grid once, then again (spec key \"repeats\"; default 1).")
    var repeats: Int?
    @Option(name: .customLong("spread-warn"), help: "At the end, list measurements whose step p90/p10 exceeds this.")
    var spreadWarn = 1.5
    @Option(help: "Seed of the weights.") var seed: UInt64 = 0
    @Option(help: "The all-reduce of cuda configurations: mpi (on device pointers where MPI is CUDA-aware, else through pinned host memory) or nccl (one GPU per rank of a TP group; MLRA_NCCL points at libnccl.so.2). cpu configurations use MPI.")
    var collective: Collective = .mpi
    @Flag(name: .customLong("no-noise-probe"), help: "Skip the FTQ noise probe that runs on every rank before measuring (mlra noise).")
    var noNoiseProbe = false
    @Option(name: .customLong("noise-budget"), help: "Seconds of the noise probe before measuring.") var noiseBudget = 1.0
    @Flag(help: "Silence progress on stderr.") var quiet = false
    @OptionGroup var topologyOptions: TopologyOptions
    @Flag(name: .customLong("inject-validation-error"), help: .hidden) var injectValidationError = false
    @Option(name: .customLong("inject-rank-delay-us"), help: .hidden) var injectRankDelayUs: Double = 0

    enum IsolateChoice: String, ExpressibleByArgument { case auto, on, off }

    func validate() throws {
        _ = try renamed(kvDtypes, "--kv-dtypes", old: kvDtypesOld, "--dtypes")
        if out == nil && !printSpec && !dryRun { throw ValidationError("--out is required: the CSV to write (appended to; a rerun resumes)") }
        if format != nil && !dryRun { throw ValidationError("--format applies to --dry-run only (the sweep writes its CSV to --out)") }
        if dryRun && printSpec { throw ValidationError("give --dry-run or --print-spec, not both") }
        if !noNoiseProbe {
            do { try NoiseProbe.Settings(budget: noiseBudget).validate() } catch let e as HarnessError { throw ValidationError(e.message) }
        }
    }

    func run() throws {
        installStopHandlers()
        try runParallel { world in
            let spec = try world.collectively { () throws -> SweepSpec in
                // Every input is checked before the driver creates or resumes any file.
                if let calibration { _ = try Calibration.load(path: calibration) }
                if let gpuCalibration { _ = try GPUCalibration.load(path: gpuCalibration) }
                guard spreadWarn.isFinite, spreadWarn >= 1 else {
                    throw HarnessError.usage("--spread-warn \(spreadWarn) must be a number of at least 1 (a ratio p90/p10)")
                }
                guard injectRankDelayUs >= 0, injectRankDelayUs <= 1e6 else {
                    throw HarnessError.usage("--inject-rank-delay-us \(injectRankDelayUs) must lie in 0...1000000")
                }
                return try resolvedSpec(worldSize: world.size)
            }
            if printSpec {
                if world.rank == 0 { print(spec.inEffect().json()) }
                return
            }
            if dryRun {
                // No --out: nothing to resume and no stored calibration to predict from.
                let plan = try SweepDriver(spec: spec, options: options(out: out ?? ""), world: world).dryRun()
                if world.rank == 0 { print(Self.render(plan, format: format ?? .table, out: out), terminator: "") }
                return
            }
            guard let out else { return }   // validate() asked for it unless --print-spec or --dry-run, which have returned
            let summary = try SweepDriver(spec: spec, options: options(out: out), world: world).run()
            if summary.interrupted { MPI.finalize(); Foundation.exit(130) }
            if summary.measured == 0 && summary.resumed == 0 && summary.skipped > 0 {
                throw AgreedError(message: "every one of the \(summary.skipped) configuration(s) was skipped (the reasons are above); nothing was measured")
            }
        }
    }

    /// The driver's options from the flags (the sweep's and its dry run's alike).
    func options(out: String) -> SweepOptions {
        var o = SweepOptions(out: out)
        o.samples = samples; o.quiet = quiet; o.arrayTask = arrayTask; o.arrayCount = arrayCount
        o.isolate = isolate == .auto ? nil : isolate == .on
        o.calibrationPath = calibration; o.gpuCalibrationPath = gpuCalibration; o.seed = seed; o.injectValidationError = injectValidationError
        o.injectRankDelayUs = injectRankDelayUs; o.spreadWarn = spreadWarn; o.recalibrate = recalibrate; o.collective = collective
        o.allowCrossNodeTP = topologyOptions.allowCrossNodeTP
        o.quickCalibration = preset == .quick
        o.noiseProbe = noNoiseProbe ? nil : NoiseProbe.Settings(budget: noiseBudget)
        return o
    }

    /// The dry run's listing: one line per measurement, then the totals (in csv format
    /// the totals go to stderr, so that stdout stays one CSV).
    static func render(_ plan: SweepPlan, format: OutputFormat, out: String?) -> String {
        func size(_ b: Int?) -> String {
            guard let b else { return format == .csv ? "" : "?" }
            if format == .csv { return "\(b)" }
            return b >= 1 << 30 ? String(format: "%.2f GiB", Double(b) / 1_073_741_824)
                : b >= 1 << 20 ? String(format: "%.2f MiB", Double(b) / 1_048_576) : String(format: "%.1f KiB", Double(b) / 1024)
        }
        func time(_ s: Double?) -> String {
            guard let s else { return format == .csv ? "" : "?" }
            if format == .csv { return String(format: "%.6g", s) }
            return s < 1e-3 ? String(format: "%.3g µs", s * 1e6) : s < 1 ? String(format: "%.3g ms", s * 1e3)
                : s < 3600 ? String(format: "%.3g s", s) : String(format: "%.2f h", s / 3600)
        }
        var table = TextTable(columns: ["n", "variant", "scope", "tp", "dp", "context", "batch", "n_head", "kv_lora_rank", "kv_heads",
                                        "kv_dtype", "device", "threads", "timing_mode", "repeat",
                                        format == .csv ? "mem_bytes_per_rank" : "mem/rank", format == .csv ? "predicted_s" : "predicted",
                                        "status"])
        let total = plan.measurements.count
        for (k, m) in plan.measurements.enumerated() {
            let c = m.config
            let status: String
            switch m.status {
            case .run: status = "run"
            case .present: status = "skip: already in \(out ?? "--out")"
            case .skipped(let why): status = "skip: " + why
            }
            table.add(["\(k + 1)/\(total)", c.variant.rawValue, c.scope.rawValue, "\(c.tp)", "\(c.isDeviceShare ? 1 : c.replicas)",
                       "\(c.context)", "\(c.batch)", "\(c.heads)", "\(c.kvRank)", "\(c.kvHeads)", c.dtype.rawValue, c.device.rawValue,
                       "\(c.threads)", c.timingMode.rawValue, "\(c.repeatIndex)", size(m.memoryPerRank),
                       m.status == .run ? time(m.seconds) : format == .csv ? "" : "-", status])
        }
        let toRun = plan.measurements.filter { $0.status == .run }
        let present = plan.measurements.filter { $0.status == .present }.count
        let unknown = toRun.filter { $0.seconds == nil }.count
        let predicted = toRun.compactMap(\.seconds).reduce(0, +)
        var totals = "# \(total) measurement\(total == 1 ? "" : "s"): \(toRun.count) to run, \(total - toRun.count - present) skipped, "
            + "\(present) already in \(out ?? "--out")\n"
        totals += unknown == toRun.count && unknown > 0 ? "# predicted time: unknown"
            : "# predicted time: " + time(predicted) + (format == .csv ? " s" : "") + (unknown > 0 ? " for \(toRun.count - unknown); unknown for \(unknown)" : "")
        totals += " (warm-up and timed steps at the roofline of the calibration; validation, allocation, calibration and the noise probe not included)\n"
        if !plan.uncalibrated.isEmpty {
            let cpu = plan.uncalibrated.filter { $0 != "cuda" }
            var what = [String]()
            if !cpu.isEmpty { what.append("cpu at \(cpu.joined(separator: ", ")) thread(s): give --calibration FILE (from 'mlra calibrate --format json')") }
            if plan.uncalibrated.contains("cuda") { what.append("cuda: give --gpu-calibration FILE (from 'mlra calibrate --device cuda --format json')") }
            totals += "# no calibration to predict time from for " + what.joined(separator: "; ")
                + ", or sweep once into --out to store one beside it (a dry run does not measure)\n"
        }
        if format == .csv {
            FileHandle.standardError.write(Data(totals.utf8))
            return table.csv()
        }
        return table.text() + totals
    }

    func resolvedSpec(worldSize: Int) throws -> SweepSpec {
        guard preset == nil || spec == nil else { throw HarnessError.usage("give --preset or --spec, not both") }
        let o = try checkingFlags { try flagGrid(worldSize: worldSize) }
        var s = try spec.map(SweepSpec.load) ?? preset?.spec(worldSize: worldSize) ?? SweepSpec(grids: [SweepSpec.Grid()])
        s.defaults = o.over(s.defaults)
        s.grids = s.grids.map { o.over($0) }
        s.repeats = repeats ?? s.repeats
        _ = try s.checkedRepeats()
        _ = try s.configurations(worldSize: worldSize)   // reject malformed grids now, before any rank allocates
        return s
    }

    /// The grid flags as a grid that overrides every grid of the spec, checked on their
    /// own (over the built-in defaults), so that a bad value is told from a bad spec file.
    func flagGrid(worldSize: Int) throws -> SweepSpec.Grid {
        var o = SweepSpec.Grid()
        o.variants = try variants.map { try parseList($0, "--variants", VariantName.parseList) }
        o.contexts = try contexts.map { try parseIntList($0, "--contexts") }
        o.tp = try tp.map { try parseIntList($0, "--tp") }
        o.kvRanks = try kvRanks.map { try parseIntList($0, "--kv-ranks") }
        o.heads = try heads.map { try parseIntList($0, "--heads") }
        o.dtypes = try (kvDtypes ?? kvDtypesOld).map { try parseList($0, "--kv-dtypes") { try $0.split(separator: ",").map { try StorageDType.parse(String($0)).rawValue } } }
        o.batch = try batch.map { try parseIntList($0, "--batch") }
        o.scopes = try scopes.map { try parseChoiceList($0, "--scopes", "scope") }
        o.threads = try threads.map { try parseIntList($0, "--threads") }
        o.devices = try devices.map { try parseChoiceList($0, "--devices", "device") }
        o.headDim = headDim; o.ropeDim = ropeDim; o.qLoraRank = qRank; o.kvHeads = kvHeads; o.nEmbd = nEmbd; o.nLayer = nLayer
        o.warmup = warmup; o.steps = steps; o.coldCache = coldCache; o.math = math
        var alone = SweepSpec(grids: [o])
        alone.repeats = repeats
        do {
            _ = try alone.checkedRepeats()
            _ = try alone.configurations(worldSize: worldSize)
        } catch let e as HarnessError {
            // The spec's words for a key ("grid 0: 'kv_ranks'") become the flag's ("--kv-ranks").
            var text = e.message
            for (key, flag) in Self.flagOfKey { text = text.replacingOccurrences(of: "grid 0: '\(key)'", with: flag) }
            throw HarnessError(text.replacingOccurrences(of: "repeats is", with: "--repeats is"))
        }
        return o
    }

    /// The grid flags by their spec key.
    static let flagOfKey = [
        "variants": "--variants", "contexts": "--contexts", "tp": "--tp", "kv_ranks": "--kv-ranks", "heads": "--heads",
        "kv_dtypes": "--kv-dtypes", "batch": "--batch", "scopes": "--scopes", "threads": "--threads", "devices": "--devices",
        "head_dim": "--head-dim", "rope_dim": "--rope-dim", "q_lora_rank": "--q-rank", "kv_heads": "--kv-heads",
        "n_embd": "--n-embd", "n_layer": "--n-layer", "warmup": "--warmup", "steps": "--steps", "math": "--math",
    ]
}

extension SweepPreset: ExpressibleByArgument {}

/// SIGINT and SIGTERM (Slurm's time limit) ask the sweep to stop after the configuration in progress.
func installStopHandlers() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { _ in sweepStopRequested = 1 }
    }
}
