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
            data-parallel replicas that split the batch. --devices cuda runs kernel scope on each rank's GPU (node-local \
            rank mod visible GPUs); cuda configurations in layer or model scope are skipped. Rerunning with the same --out \
            resumes. Schema: docs/csv-schema.md.
            """)

    @Option(help: "Built-in grid: quick, paper or throughput.") var preset: SweepPreset?
    @Option(help: "Spec file (JSON; see the README).") var spec: String?
    @Flag(name: .customLong("print-spec"), help: "Print the resolved spec as JSON and exit.") var printSpec = false

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
    @Option(name: .customLong("cold-cache"), help: "Kernel scope: rotate caches beyond the LLC (true/false).") var coldCache: Bool?

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
        if out == nil && !printSpec { throw ValidationError("--out is required: the CSV to write (appended to; a rerun resumes)") }
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
                if world.rank == 0 { print(spec.json()) }
                return
            }
            guard let out else { return }   // validate() asked for it unless --print-spec, which has returned
            var o = SweepOptions(out: out)
            o.samples = samples; o.quiet = quiet; o.arrayTask = arrayTask; o.arrayCount = arrayCount
            o.isolate = isolate == .auto ? nil : isolate == .on
            o.calibrationPath = calibration; o.gpuCalibrationPath = gpuCalibration; o.seed = seed; o.injectValidationError = injectValidationError
            o.injectRankDelayUs = injectRankDelayUs; o.spreadWarn = spreadWarn; o.recalibrate = recalibrate
            o.allowCrossNodeTP = topologyOptions.allowCrossNodeTP
            o.quickCalibration = preset == .quick
            o.noiseProbe = noNoiseProbe ? nil : NoiseProbe.Settings(budget: noiseBudget)
            let summary = try SweepDriver(spec: spec, options: o, world: world).run()
            if summary.interrupted { MPI.finalize(); Foundation.exit(130) }
            if summary.measured == 0 && summary.resumed == 0 && summary.skipped > 0 {
                throw AgreedError(message: "every one of the \(summary.skipped) configuration(s) was skipped (the reasons are above); nothing was measured")
            }
        }
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
        o.warmup = warmup; o.steps = steps; o.coldCache = coldCache
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
        "dtypes": "--kv-dtypes", "batch": "--batch", "scopes": "--scopes", "threads": "--threads", "devices": "--devices",
        "head_dim": "--head-dim", "rope_dim": "--rope-dim", "q_lora_rank": "--q-rank", "kv_heads": "--kv-heads",
        "n_embd": "--n-embd", "n_layer": "--n-layer", "warmup": "--warmup", "steps": "--steps",
    ]
}

extension SweepPreset: ExpressibleByArgument {}

/// SIGINT and SIGTERM (Slurm's time limit) ask the sweep to stop after the configuration in progress.
func installStopHandlers() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { _ in sweepStopRequested = 1 }
    }
}
