import Foundation
import MLRACore
import MLRACuda
import MLRAParallel

public struct SweepOptions {
    public var out: String
    public var samples: String?
    public var quiet = false
    /// nil = auto: isolate when the node runs more compute threads than it has cores.
    public var isolate: Bool?
    public var arrayTask = 0, arrayCount = 1
    public var calibrationPath: String?
    /// --gpu-calibration: the roofline of cuda rows (default: measured on rank 0's GPU).
    public var gpuCalibrationPath: String?
    public var quickCalibration = false
    public var seed: UInt64 = 0
    /// --allow-cross-node-tp: TP groups may span nodes (by default a degree that cannot stay inside a node is refused).
    public var allowCrossNodeTP = false
    /// Self-test: perturb the checked output so validation must fail.
    public var injectValidationError = false
    /// The FTQ noise probe run on every rank before measuring (nil: --no-noise-probe).
    public var noiseProbe: NoiseProbe.Settings? = NoiseProbe.Settings(budget: 1)
    /// Self-test: the last rank of each TP group sleeps this long (µs) before each
    /// collective of a timed step, so the wait must show in imbalance_us, not allreduce_us.
    public var injectRankDelayUs = 0.0
    /// --spread-warn: configurations whose step p90/p10 exceeds this are listed at the end.
    public var spreadWarn = 1.5
    /// --recalibrate: replace the calibration stored beside --out instead of reusing it.
    public var recalibrate = false
    /// --collective: the library of cuda configurations' all-reduces.
    public var collective = Collective.mpi
    public init(out: String) { self.out = out }
}

public struct SweepSummary {
    public var measured = 0, resumed = 0, skipped = 0, interrupted = false
}

/// Set from a signal handler (SIGINT, SIGTERM); the sweep stops between configurations.
nonisolated(unsafe) public var sweepStopRequested: sig_atomic_t = 0

/// Runs a sweep on every rank of `world`: expands the spec, skips illegal or
/// already-measured configurations, validates each one, times it with the
/// protocol of `TimingProtocol`, and has world rank 0 append its rows.
public final class SweepDriver {
    let spec: SweepSpec
    let options: SweepOptions
    let world: Communicator
    var groupsByTP: [Int: TPGroups] = [:]
    /// Which node every rank is on (the same on every rank), taken at the start of `run`.
    var topology: NodeTopology!
    var calibrations: [Int: Calibration] = [:]
    /// Isolation mode, agreed by every rank in `prepareMetadata`.
    var isolate = false
    var metadata: [String: String] = [:]
    var results: AppendOnlyCSV?
    var samplesFile: AppendOnlyCSV?
    /// Held by rank 0 from before it reads the outputs until the run ends.
    var locks: [RunLock] = []
    /// --calibration and --gpu-calibration, loaded (on rank 0) with the other inputs, before any output is touched.
    var calibrationFile: Calibration?
    var gpuCalibrationFile: GPUCalibration?
    /// Rank 0: the samples file of earlier runs into --out when this run writes none (SamplesRecord).
    var staleSamples: String?
    /// The calibration stored beside --out by an earlier run (CalibrationStore), read on rank 0 with the inputs.
    var storedCalibration: CalibrationStore?
    /// This rank's GPU, bound when the sweep has cuda configurations to run (SweepDriver+CUDA).
    var gpu: CUDADevice?
    /// The cuda rows' roofline, decided on rank 0 in `prepareMetadata`.
    var gpuCalibration: GPUCalibration?
    /// calib_source of each device's rows (part of the resume key).
    var calibSources: [DeviceKind: String] = [:]
    let started = MPI.wtime()

    public init(spec: SweepSpec, options: SweepOptions, world: Communicator) {
        self.spec = spec; self.options = options; self.world = world
    }

    func progress(_ line: String) {
        guard world.rank == 0, !options.quiet else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    public func run() throws -> SweepSummary {
        defer { locks.forEach { $0.release() } }   // however the run ends; a killed run's flock dies with it
        let mine = try selectedConfigurations()
        try bindGPUs(for: mine)

        // Rank 0 owns the files; resuming skips configurations already present.
        let doneText = try world.collectively { () throws -> String in
            guard world.rank == 0 else { return "" }
            return try openOutputs().joined(separator: "\n")
        }
        let done = Set(world.broadcast(doneText).split(separator: "\n").map(String.init))

        try prepareMetadata(threadCounts: Array(Set(mine.filter { $0.device == .cpu }.map(\.threads))).sorted())
        // The run-wide settings that are part of the resume key, now that every rank agreed on them.
        let configs = mine.map(withRunSettings)
        var summary = SweepSummary()
        let repeats = try world.collectively { try spec.checkedRepeats() }
        // The node's noise, once per run that has anything left to measure.
        func left(_ c: SweepConfig) -> Bool { (0..<repeats).contains { r in var k = c; k.repeatIndex = r; return !done.contains(k.key) } }
        if configs.contains(where: left) { try probeNoise() }
        if world.rank == 0, let staleSamples, configs.contains(where: { $0.skipReason() == nil && left($0) }) {
            // Not silenced by --quiet: the two files part from here on.
            FileHandle.standardError.write(Data(("mlra: warning: \(staleSamples) holds the samples of earlier runs into \(options.out), "
                + "but this run writes none (no --samples): it will no longer match the CSV; "
                + "give --samples \(staleSamples) to keep them together\n").utf8))
        }
        // Interleaved: every configuration once, then every one again, so that drift of
        // the machine over the run (thermal, neighbours, a bandwidth drop) is spread over
        // all variants instead of biasing the ones measured last.
        let total = configs.count * repeats
        var skippedIndices = Set<Int>()
        // The ETA from predicted time (SweepPrediction): what is left of the measurements
        // this run will make, the rule-skipped and already present ones left out; nil
        // when one of them has no prediction (then the ETA counts configurations).
        let runnable = configs.map { $0.skipReason() == nil }
        let predicted = configs.map(predictedSeconds)
        func counted(_ c: SweepConfig, _ i: Int) -> Bool { runnable[i] && !done.contains(c.key) }
        var predictedLeft: Double? = 0, predictedDone = 0.0
        for round in 0..<repeats { for (i, base) in configs.enumerated() {
            var c = base
            c.repeatIndex = round
            if counted(c, i) { predictedLeft = predicted[i].flatMap { p in predictedLeft.map { $0 + p } } }
        } }
        let loopStarted = MPI.wtime()
        var spreads = [(label: String, spread: Double)]()
        sweep: for round in 0..<repeats {
            for (i, base) in configs.enumerated() {
                var config = base
                config.repeatIndex = round
                let n = round * configs.count + i + 1
                let stop = world.allReduce(Double(sweepStopRequested), max: true)
                if stop > 0 {
                    summary.interrupted = true
                    progress("interrupted: stopping before configuration \(n)/\(total); finished rows are in \(options.out); rerun the same command to resume")
                    break sweep
                }
                let label = config.label + (repeats > 1 ? " rep \(round)/\(repeats)" : "")
                let tag = "[\(n)/\(total)] \(label)"
                if counted(config, i), let p = predicted[i] { predictedLeft = predictedLeft.map { max(0, $0 - p) } }
                // Skipping depends on the configuration, not the repeat: decided (and said) once.
                if skippedIndices.contains(i) { continue }
                if done.contains(config.key) { summary.resumed += 1; progress("\(tag): already in \(options.out), skipped"); continue }
                if let reason = try config.skipReason() ?? memoryShortfall(config) {
                    summary.skipped += 1; skippedIndices.insert(i); progress("\(tag): skipped: \(reason)"); continue
                }
                let step = try measure(config)
                summary.measured += 1
                let spread = step.p10 > 0 ? step.p90 / step.p10 : .infinity
                if spread > options.spreadWarn { spreads.append((label, spread)) }
                predictedDone += predicted[i] ?? 0
                let elapsed = MPI.wtime() - started
                let eta = SweepPrediction.eta(elapsed: MPI.wtime() - loopStarted, predictedDone: predictedDone,
                                              predictedLeft: predictedLeft, done: n, left: total - n)
                progress(String(format: "%@: step median %.1f µs, p90/p10 %.2f · elapsed %.0f s · ETA %.0f s",
                                tag, step.median * 1e6, spread, elapsed, eta))
            }
        }
        progress("sweep done: \(summary.measured) measured, \(summary.resumed) already present, \(summary.skipped) skipped → \(options.out)")
        if world.rank == 0, !spreads.isEmpty {
            // Not silenced by --quiet: these rows are in the CSV, and a reader should know.
            let list = spreads.map { String(format: "%@ (%.2f)", $0.label, $0.spread) }.joined(separator: "; ")
            FileHandle.standardError.write(Data(("mlra: warning: \(spreads.count) measurement\(spreads.count == 1 ? "" : "s") "
                + String(format: "spread p90/p10 above %.2f (--spread-warn): ", options.spreadWarn) + list + "\n").utf8))
        }
        return summary
    }

    /// `c` with the run-wide settings that are part of the resume key, once every rank
    /// agreed on them (the seed, isolation, the calibration, the collective).
    func withRunSettings(_ c: SweepConfig) -> SweepConfig {
        var c = c
        c.seed = options.seed; c.isolated = isolate; c.calibSource = calibSources[c.device] ?? ""
        c.collective = c.device == .cuda ? options.collective : .mpi
        return c
    }

    /// This array task's configurations (before the run-wide key settings), with the
    /// world's node topology taken. Shared by the sweep and its dry run, so both refuse alike.
    func selectedConfigurations() throws -> [SweepConfig] {
        let all = try world.collectively { try spec.configurations(worldSize: world.size) }
        try world.collectively {
            guard options.arrayCount >= 1, options.arrayTask >= 0, options.arrayTask < options.arrayCount else {
                throw HarnessError.usage("--array-task \(options.arrayTask) must lie in 0..<\(options.arrayCount) (--array-count)")
            }
        }
        let mine = all.enumerated().filter { $0.offset % options.arrayCount == options.arrayTask }.map(\.element)
        // TP groups stay inside a node: a degree that cannot is refused now, before any
        // file or allocation, not skipped (the layout asked for cannot be honoured).
        topology = NodeTopology(world)
        try world.collectively {
            for t in Set(mine.filter { $0.skipReason() == nil && !$0.isDeviceShare }.map(\.tp)).sorted() {
                try TPGroups.check(tp: t, topology: topology, allowCrossNode: options.allowCrossNodeTP)
            }
        }
        return mine
    }

    /// Rank 0: --calibration, --gpu-calibration and the store beside --out, loaded and
    /// checked against each other (read only; the sweep and its dry run refuse alike).
    func loadCalibrationInputs() throws {
        if let path = options.calibrationPath { calibrationFile = try Calibration.load(path: path) }
        if let path = options.gpuCalibrationPath { gpuCalibrationFile = try GPUCalibration.load(path: path) }
        if !options.recalibrate, !options.out.isEmpty, let stored = try CalibrationStore.load(for: options.out) {
            // An explicit calibration that is not the stored one would hold the rows to come
            // to another roofline than the file's rows (under another calib_source): refused.
            let storePath = CalibrationStore.path(for: options.out)
            if calibrationFile != nil, !stored.cpu.isEmpty, try calibrationSource(calibrationFile) != stored.cpuSource {
                throw HarnessError("\(options.out)'s rows are held to the calibration in \(storePath) (calib_source \(stored.cpuSource)), "
                                   + "--calibration gives another (\(try calibrationSource(calibrationFile))); give --recalibrate to replace it, or write to a new file")
            }
            if gpuCalibrationFile != nil, let source = stored.gpuSource, "gpu-" + (try calibrationSource(gpuCalibrationFile)) != source {
                throw HarnessError("\(options.out)'s cuda rows are held to the GPU calibration in \(storePath) (calib_source \(source)), "
                                   + "--gpu-calibration gives another; give --recalibrate to replace it, or write to a new file")
            }
            storedCalibration = stored
        }
    }

    /// A file holds one share of one array shape. Resuming a task file with another
    /// shape would measure again what the file's own shape gave to another task
    /// file, and the merge would see one configuration twice.
    func checkArrayShape(_ rows: [[String: String]]) throws {
        for row in rows where row["array_count"] != "\(options.arrayCount)" || row["array_task"] != "\(options.arrayTask)" {
            let task = row["array_task"] ?? "", count = row["array_count"] ?? ""
            throw HarnessError("\(options.out) holds rows of array task \(task) of \(count) (columns array_task, array_count), "
                               + "this run is task \(options.arrayTask) of \(options.arrayCount); resume it with "
                               + "--array-task \(task) --array-count \(count), or write to a new file")
        }
    }

    /// Rank 0: checks every input, then locks, repairs and opens the outputs; returns
    /// the resume keys already in --out. Nothing is modified until everything that
    /// could refuse the run has been checked: --calibration, both paths (and that they
    /// differ), the locks, both files' headers. (Only the lock files are created first:
    /// the headers must be read under the lock.)
    func openOutputs() throws -> [String] {
        try loadCalibrationInputs()
        try checkWritable(options.out)
        if let s = options.samples {
            try checkWritable(s)
            if sameFile(options.out, s) {
                throw HarnessError("--out and --samples are the same file (\(s)); give the samples a file of their own")
            }
        }
        locks = try ([options.out] + (options.samples.map { [$0] } ?? [])).map { try RunLock(for: $0) }
        for lock in locks { if let dead = lock.takenOverFrom { progress("\(lock.path): taken over from a run that ended without releasing it (\(dead))") } }
        let outInfo = try AppendOnlyCSV.inspect(path: options.out, columns: ResultsSchema.columns)
        let samplesInfo = try options.samples.map { try AppendOnlyCSV.inspect(path: $0, columns: ResultsSchema.sampleColumns, wantRows: false) }
        try checkArrayShape(outInfo.rows)
        results = try AppendOnlyCSV(outInfo)
        if options.samples == nil, !outInfo.rows.isEmpty { staleSamples = SamplesRecord.existing(for: options.out) }
        if let samplesInfo {
            let file = try AppendOnlyCSV(samplesInfo)
            samplesFile = file
            // Samples are written before their rows; a run killed between the two left
            // samples with no row (always the file's last ones: one run at a time, and
            // a failed row cuts its samples off). Cut them off now, so a configuration's
            // samples and rows are on disk together or not at all.
            let linked = Set(outInfo.rows.map { "\($0["run_id"] ?? "") \($0["config_id"] ?? "")" })
            let cut = try file.dropTrailingRows { !linked.contains("\($0["run_id"] ?? "") \($0["config_id"] ?? "")") }
            if cut > 0 { progress("\(file.path): cut off \(cut) samples of a configuration whose row was never written") }
            // Advisory: a record that cannot be written (a full disk) costs only the warning of a later run.
            if (try? SamplesRecord.write(samples: file.path, for: options.out)) == nil {
                progress("\(SamplesRecord.path(for: options.out)): cannot record the samples file beside the CSV")
            }
        }
        return outInfo.rows.map(SweepConfig.key(row:))
    }

    /// Calibrations, one per thread count the sweep's cpu configurations use (rank 0
    /// measures while the others sleep; a `--calibration` file serves every row and says
    /// its own thread count) and, with cuda configurations, the GPU's (--gpu-calibration,
    /// or measured on rank 0's GPU), the timing mode, and the run's metadata columns —
    /// all decided on rank 0 and broadcast, so every rank takes the same decisions.
    func prepareMetadata(threadCounts: [Int]) throws {
        // The store beside --out: what this run's rows are held to, and what the next run reuses.
        var store = storedCalibration ?? CalibrationStore(cpu: [:], cpuSource: "")
        func measureCPU(_ t: Int, quick: Bool) throws -> Calibration {
            let cal = try Calibration.measure(threads: t, quick: quick)
            progress(String(format: "calibration (%d thread%@): read %.1f GB/s, triad %.1f GB/s, sgemm %.1f GFLOP/s, FMA loop %.1f GFLOP/s",
                            cal.threads, cal.threads == 1 ? "" : "s", cal.readGBs, cal.triadGBs, cal.sgemmGFlops, cal.fmaGFlops))
            return cal
        }
        let calText = try world.collectively { () throws -> String in
            guard world.rank == 0 else { return "" }
            var cals = [String: Calibration]()
            if let stored = storedCalibration, !stored.cpu.isEmpty {
                // Reused, with its calib_source; a thread count it lacks is measured the same
                // way (quick or not) and added, so the source stays true for every row.
                for t in threadCounts {
                    if let cal = stored.cpu(threads: t) { cals["\(t)"] = cal; continue }
                    let cal = try measureCPU(t, quick: stored.cpuSource == "measured-quick")
                    cals["\(t)"] = cal; store.cpu["\(t)"] = cal
                }
            } else {
                store.cpuSource = try calibrationSource(calibrationFile)
                if let cal = calibrationFile {
                    for t in threadCounts { cals["\(t)"] = cal }
                    if !threadCounts.isEmpty { store.cpu = ["\(cal.threads)": cal] }
                } else {
                    for t in threadCounts { cals["\(t)"] = try measureCPU(t, quick: options.quickCalibration) }
                    store.cpu = cals
                }
            }
            return String(decoding: try JSONEncoder().encode(CalibrationStore(cpu: cals, cpuSource: store.cpuSource)), as: UTF8.self)
        }
        let decoded = try JSONDecoder().decode(CalibrationStore.self, from: Data(world.broadcast(calText).utf8))
        calibrations = Dictionary(uniqueKeysWithValues: decoded.cpu.compactMap { k, v in Int(k).map { ($0, v) } })
        calibSources[.cpu] = decoded.cpuSource
        calibSources[.cuda] = world.broadcast(world.rank == 0 ? "gpu-" + (try calibrationSource(gpuCalibrationFile)) : "")
        if let gpu {
            let gpuText = try world.collectively { () throws -> String in
                guard world.rank == 0 else { return "" }
                if let cal = storedCalibration?.gpu, let source = storedCalibration?.gpuSource {
                    return String(decoding: try JSONEncoder().encode(CalibrationStore(cpu: [:], cpuSource: "-", gpu: cal, gpuSource: source)), as: UTF8.self)
                }
                let cal = try gpuCalibrationFile ?? GPUCalibration.measure(device: gpu, quick: options.quickCalibration)
                if gpuCalibrationFile == nil {
                    progress(String(format: "GPU calibration (%@): read %.1f GB/s, copy %.1f GB/s, tensor bf16 %.1f TFLOP/s, f32 FMA %.1f TFLOP/s",
                                    cal.gpuName, cal.readGBs, cal.copyGBs, cal.tensorTFlops, cal.fmaTFlops))
                }
                store.gpu = cal; store.gpuSource = "gpu-" + (try calibrationSource(gpuCalibrationFile))
                return String(decoding: try JSONEncoder().encode(store), as: UTF8.self)
            }
            let got = try JSONDecoder().decode(CalibrationStore.self, from: Data(world.broadcast(gpuText).utf8))
            gpuCalibration = got.gpu
            calibSources[.cuda] = got.gpuSource ?? calibSources[.cuda]
        }
        // Stored only now, after every input was checked and the measurement succeeded,
        // and before any row refers to it.
        try world.collectively {
            guard world.rank == 0, store != storedCalibration, !store.cpu.isEmpty || store.gpu != nil else { return }
            try store.write(for: options.out)
        }
        isolate = world.broadcast(world.rank == 0 ? (localIsolationVerdict ? "1" : "0") : "") == "1"
        let runId = world.broadcast(world.rank == 0 ? String(UInt64.random(in: 0...UInt64.max), radix: 16) : "")
        metadata = [
            "schema_version": ResultsSchema.version, "run_id": runId, "harness_version": HarnessVersion.string,
            "git_rev": world.broadcast(world.rank == 0 ? gitRevision() : ""), "mpi_library": MPI.libraryVersion,
            "world_size": "\(world.size)",
            "array_task": "\(options.arrayTask)", "array_count": "\(options.arrayCount)",
        ]
    }

    /// The noise probe on every rank at once, before anything is measured: its summary goes
    /// into every row of the run (the worst rank's), its whole report beside --out.
    func probeNoise() throws {
        guard let settings = options.noiseProbe else { return }   // the columns stay empty
        let report = try NoiseReport.measure(world: world, settings: settings)
        let worst = report.worst!   // every rank reported
        metadata["noise_cv_max"] = String(format: "%.6g", worst.summary.cv)
        metadata["noise_lost_fraction_max"] = String(format: "%.6g", report.ranks.map(\.summary.lostFraction).max() ?? 0)
        metadata["noise_top_hz"] = worst.summary.topHz.map { String(format: "%.6g", $0) } ?? ""
        try world.collectively {
            guard world.rank == 0 else { return }
            let path = options.out + ".noise-\(metadata["run_id"] ?? "run").json"
            try writeAtomically(try report.json(), to: path)
            progress(String(format: "noise probe (%g s on %d rank(s)): worst CV %.4f on rank %d, %.2f%% of quanta lost >10%%, strongest component %@ → %@",
                            settings.budget, report.ranks.count, worst.summary.cv, worst.rank, 100 * worst.summary.lostFraction,
                            worst.summary.topHz.map { String(format: "%.1f Hz", $0) } ?? "none", path))
        }
    }

    /// A calibration's identity (column calib_source, part of the resume key: the
    /// roofline columns are computed from it): "measured" by this run (each run's
    /// measurement differs a little, but it is the same procedure), or "file:" and a
    /// hash of the calibration file's values (not its bytes: reformatting the JSON
    /// does not change the calibration). cuda rows prefix theirs with "gpu-".
    func calibrationSource<C: Encodable>(_ file: C?) throws -> String {
        guard let file else { return options.quickCalibration ? "measured-quick" : "measured" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.keyEncodingStrategy = RenamedKeys.writingOldNames(CalibrationStore.renamedKeys)   // the identity from before the rename
        return "file:" + fnv1aHex([UInt8](try encoder.encode(file)))
    }

    func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        if stat(a, &sa) == 0, stat(b, &sb) == 0 { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
        func norm(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        return norm(a) == norm(b)
    }

    /// The CPU calibration of a configuration's thread count (the roofline a cpu row is held to).
    func calibration(_ c: SweepConfig) -> Calibration { calibrations[c.threads] ?? calibrations.values.first! }

    /// The last-level cache a cpu configuration's cold-cache sets are sized from: its
    /// calibration's, or (a dry run without one) what measuring would find.
    func llcBytes(_ c: SweepConfig) -> Int {
        (calibrations[c.threads] ?? calibrations.values.first)?.llcBytes ?? Calibration.lastLevelCacheBytes()
    }

    /// The calibration a configuration's row would be held to, where one is known (a dry
    /// run knows only those of --calibration and of the store beside --out).
    func knownCalibration(_ c: SweepConfig) -> RowCalibration? {
        c.device == .cuda ? gpuCalibration.map(RowCalibration.gpu) : calibrations[c.threads].map(RowCalibration.cpu)
    }

    /// One measurement's predicted seconds (SweepPrediction), or nil without a calibration.
    func predictedSeconds(_ c: SweepConfig) -> Double? {
        knownCalibration(c).flatMap { try? SweepPrediction.seconds(c, calibration: $0) }
    }

    /// The calibration a configuration's row is held to.
    func rowCalibration(_ c: SweepConfig) -> RowCalibration {
        c.device == .cuda ? .gpu(gpuCalibration!) : .cpu(calibration(c))
    }

    func groups(tp: Int) throws -> TPGroups {
        if let g = groupsByTP[tp] { return g }
        let g = try TPGroups(world: world, tp: tp, topology: topology, allowCrossNode: options.allowCrossNodeTP)
        groupsByTP[tp] = g
        return g
    }

    var maxThreads: Int { spec.grids.map { $0.over(spec.defaults).over(.fallback).threads!.max()! }.max() ?? 1 }

    /// Isolation by default when the node runs more compute threads than it has cores
    /// (rank 0's node; broadcast so that no rank times differently from the others).
    var localIsolationVerdict: Bool {
        if let i = options.isolate { return i }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        return topology.localSize * maxThreads > cores
    }

    /// Predicted memory of a configuration against what each node has: node-local rank 0
    /// of every node judges its own node (its ranks × the prediction; device-share runs
    /// on rank 0 alone), and the first node short of memory decides for every rank.
    func memoryShortfall(_ c: SweepConfig) throws -> String? {
        if c.device == .cuda { return try gpuMemoryShortfall(c) }
        var message = ""
        if topology.localRank == 0, world.rank == 0 || !c.isDeviceShare, let need = try? c.footprint(backend: .cpu(lastLevelCacheBytes: llcBytes(c))),
           let short = MemoryBudget.shortfall(need, ranks: c.isDeviceShare ? 1 : topology.localSize) {
            message = topology.nodeCount > 1 ? "on \(topology.hostOf[topology.nodeOf[world.rank]]): \(short)" : short
        }
        let flags = world.allGatherDoubles([message.isEmpty ? 0 : 1])
        guard let first = flags.firstIndex(of: 1) else { return nil }
        return world.broadcast(message, root: first)
    }

    /// Where a configuration runs in this job: this rank's TP group (none for one
    /// device's share), whether this rank takes part, its rank in the group and the
    /// sequences it decodes.
    struct Placement {
        let groups: TPGroups?
        let active: Bool
        let tpRank: Int
        let sequences: Int
        /// The group's rank 0 describes its group in a row.
        var reporter: Bool { active && tpRank == 0 }
    }

    func placement(_ c: SweepConfig) throws -> Placement {
        let g: TPGroups? = c.isDeviceShare ? nil : try groups(tp: c.tp)
        return Placement(groups: g, active: c.isDeviceShare ? world.rank == 0 : g!.replica < c.replicas, tpRank: g?.tpRank ?? 0,
                         sequences: c.isDeviceShare ? c.batch : c.sequencesPerReplica)
    }

    /// The rank of the plan whose shard this rank runs: its own, or the busiest for one device's share.
    func planRank(_ c: SweepConfig, _ layout: any AttentionLayout, _ p: Placement) throws -> Int {
        c.isDeviceShare ? try KernelWorkload.busiestRank(layout, tp: c.tp) : p.tpRank
    }

    /// What validating and timing one configuration gave this rank (used where it took part).
    struct Measurement {
        var samples = StepSamples(step: [], kernel: [], collective: [])
        /// Largest validation error, max over the world.
        var maxError = 0.0
        var weightBytes = 0
        /// The all-reduce payloads of one step (floats; none at tp 1).
        var allReduceFloats: [Int] = []
        /// Columns only this device's rows have: kernel_isa on the CPU, the GPU's identity on
        /// cuda; and the tolerance the check used.
        var columns: [String: String] = [:]

        /// The check's tolerance (the reporting rank's: it compared), into the row's columns.
        mutating func setTolerance(_ t: Tolerance?) {
            guard let t else { return }
            columns["validation_atol"] = String(format: "%.3g", t.atol); columns["validation_rtol"] = String(format: "%.3g", t.rtol)
        }
    }

    /// One configuration in stages: built, validated and timed on its device (measureOnCPU,
    /// measureOnGPU), its rows gathered on world rank 0, then written. Returns the step's
    /// median, p10 and p90 (seconds) of the first group, on every rank.
    func measure(_ c: SweepConfig) throws -> (median: Double, p10: Double, p90: Double) {
        let layout = try c.attentionConfig.layout()
        let cost = try DecodeCost(layout, tp: c.tp, dtype: c.dtype)
        let p = try placement(c)
        let m = c.device == .cuda ? try measureOnGPU(c, layout: layout, p) : try measureOnCPU(c, layout: layout, p)
        let (rows, samples) = try gather(c, cost: cost, p, m)
        try write(rows, samples: samples)
        let first = rows.first.map { [$0.step_us_median, $0.step_us_p10, $0.step_us_p90] } ?? []
        let step = (0..<3).map { i in (Double(world.broadcast(first.indices.contains(i) ? first[i] : "0")) ?? 0) / 1e6 }
        return (step[0], step[1], step[2])
    }

    /// Each active group's rank 0 describes its group (its row, and its samples when
    /// --samples is given); world rank 0 receives them all (the other ranks: none).
    func gather(_ c: SweepConfig, cost: DecodeCost, _ p: Placement, _ m: Measurement) throws -> (rows: [SweepRow], samples: [[String: String]]) {
        let samples = m.samples, g = p.groups, seqs = p.sequences
        let stepStats = p.reporter ? SampleStats(samples.step) : nil
        let jobTokensPerSecond = world.allReduce(p.reporter ? Double(seqs) / stepStats!.median : 0, max: false)
        var rowJSON = ""
        var sampleLines = [[String: String]]()
        if p.reporter, let stepStats {
            let hosts = g.map { $0.hosts(ofReplica: $0.replica) } ?? [MPI.processorName]
            let row = try makeRow(c, cost: cost, group: g?.replica ?? 0, hosts: hosts, seqs: seqs, measured: m, stepStats: stepStats,
                                  jobTokensPerSecond: jobTokensPerSecond)
            rowJSON = String(decoding: try JSONEncoder().encode(row), as: UTF8.self)
            if options.samples != nil {
                sampleLines = samples.step.indices.map { k in
                    ["run_id": metadata["run_id"]!, "config_id": c.configID, "variant": c.variant.rawValue, "scope": c.scope.rawValue, "tp": "\(c.tp)",
                     "tp_group": "\(g?.replica ?? 0)", "context": "\(c.context)", "batch": "\(c.batch)", "n_head": "\(c.heads)",
                     "kv_lora_rank": "\(c.kvRank)", "kv_dtype": c.dtype.rawValue, "threads": "\(c.threads)", "timing_mode": c.timingMode.rawValue,
                     "repeat": "\(c.repeatIndex)",
                     "step_index": "\(k)", "step_us": fmt(samples.step[k] * 1e6), "kernel_us": fmt(samples.kernel[k] * 1e6),
                     "allreduce_us": c.scope == .kernel ? "" : fmt(samples.collective[k] * 1e6),
                     "imbalance_us": c.scope == .kernel ? "" : fmt(samples.wait[k] * 1e6)]
                }
            }
        }
        let replicas = c.isDeviceShare ? 1 : c.replicas
        var rows = [SweepRow](), sampleRows = [[String: String]]()
        for replica in 0..<replicas {
            let root = g?.ranks(ofReplica: replica).first ?? 0   // the replica's TP rank 0 wrote its row
            let text = world.broadcast(rowJSON, root: root)
            let samplesText = world.broadcast(String(decoding: (try? JSONEncoder().encode(sampleLines)) ?? Data(), as: UTF8.self), root: root)
            if world.rank == 0 {
                rows.append(try JSONDecoder().decode(SweepRow.self, from: Data(text.utf8)))
                sampleRows += (try? JSONDecoder().decode([[String: String]].self, from: Data(samplesText.utf8))) ?? []
            }
        }
        return (rows, sampleRows)
    }

    /// World rank 0 appends a configuration's samples, then its rows (every rank takes part,
    /// so that a failure stops them all). Samples first, rows last: a row in the results
    /// means its samples are on disk; if the rows cannot be written, the samples just
    /// written are cut off again.
    func write(_ rows: [SweepRow], samples: [[String: String]]) throws {
        try world.collectively {
            guard world.rank == 0 else { return }
            let samplesStart = try samplesFile?.size()
            try samplesFile?.append(samples)
            do { try results!.append(rows.map(\.cells)) } catch {
                if let samplesFile, let samplesStart { try? samplesFile.truncate(to: samplesStart, why: "the samples of an unwritten row") }
                throw error
            }
        }
    }

    /// A cpu configuration: the rank's workload in its scope, validated, then timed by TimingProtocol.
    func measureOnCPU(_ c: SweepConfig, layout: any AttentionLayout, _ p: Placement) throws -> Measurement {
        let g = p.groups, seqs = p.sequences
        // Every scope runs this kernel object; its ISA (the loops it dispatches to) goes into the row.
        let kernel = try TiledAttentionKernel(threads: c.threads, math: c.math)
        let timed = TimedKernel(kernel)
        let weights = SeededWeights(seed: options.seed)

        // Build this rank's workload and validate it before timing.
        let (work, check) = try world.collectively { () throws -> (StepWorkload?, ValidationResult) in
            guard p.active else { return (nil, ValidationResult(maxError: 0, violation: nil)) }
            let rank = try planRank(c, layout, p)
            switch c.scope {
            case .kernel:
                let shard = try layout.shard(tp: c.tp, rank: rank)
                let check = Validation.kernel(layout: layout, shard: shard, dtype: c.dtype, context: c.context,
                                              kernel: timed.inner, injectError: options.injectValidationError)
                let w = try KernelWorkload(layout: layout, shard: shard, dtype: c.dtype, context: c.context, sequences: seqs,
                                           coldCache: c.coldCache, kernel: timed, llcBytes: calibration(c).llcBytes)
                return (KernelStep(w), check)
            case .layer:
                let shard = try layout.makeShard(layout.shard(tp: c.tp, rank: rank), weights: weights, prefix: "")
                let check = try Validation.layer(c, shard: shard, weights: weights, group: g!.group, kernel: timed.inner,
                                                 injectError: options.injectValidationError)
                return (try LayerStep(shard: shard, sequences: seqs, context: c.context, dtype: c.dtype, appending: c.appending,
                                      llcBytes: calibration(c).llcBytes, kernel: timed), check)
            case .model:
                let model = try DecoderShard(layout: ModelLayout(config: c.attentionConfig), tp: c.tp, rank: rank, weights: weights)
                let check = try Validation.model(c, model: model, weights: weights, group: g!.group, kernel: timed.inner,
                                                 injectError: options.injectValidationError)
                return (try ModelStep(model: model, sequences: seqs, context: c.context, dtype: c.dtype, appending: c.appending,
                                      llcBytes: calibration(c).llcBytes, kernel: timed), check)
            }
        }
        try world.collectively {
            if let v = check.violation { throw HarnessError("validation failed for \(c.label): \(v)") }
        }
        var m = Measurement()
        m.maxError = world.allReduce(check.maxError, max: true)

        timeSteps(c, p, work, clock: timed, into: &m)
        m.columns["kernel_isa"] = kernel.isa.rawValue
        // The row's kernel_math is the configuration's (its resume key): the checked kernel must have run it.
        let ran = world.allReduce(check.math == .bf16 ? 1 : 0, max: true) > 0 ? ProductMath.bf16 : .f32
        guard ran.rawValue == c.kernelMath else {
            throw HarnessError("internal: \(c.label): the kernel ran \(ran) products, the configuration's kernel_math is \(c.kernelMath)")
        }
        m.setTolerance(check.tolerance)
        return m
    }

    /// Times a configuration's built workload (every scope, CPU or GPU) by its timing mode:
    /// the step, kernel (read from `clock`), collective and imbalance samples, the weights
    /// and the all-reduces a step issues.
    func timeSteps(_ c: SweepConfig, _ p: Placement, _ work: StepWorkload?, clock: KernelClock, into m: inout Measurement) {
        switch c.timingMode {
        case .concurrent:
            if p.active, let work, let group = p.groups?.group {
                if group.rank == group.size - 1 { group.injectedDelay = options.injectRankDelayUs * 1e-6 }
                defer { group.injectedDelay = 0 }
                m.samples = TimingProtocol.concurrent(work, group: group, kernel: clock, warmup: c.warmup, steps: c.steps)
            }
            world.quietBarrier()
        case .isolated, .deviceShare:
            let local = TimingProtocol.isolatedLocal(work, world: world, tpSize: c.tp, tpRank: p.tpRank, kernel: p.active ? clock : nil,
                                                     warmup: c.warmup, steps: c.steps)
            if c.timingMode == .deviceShare {
                m.samples = StepSamples(step: local.step, kernel: local.kernel, collective: [Double](repeating: 0, count: local.step.count))
            } else if p.active, let work, let group = p.groups?.group {
                let comm = TimingProtocol.collectivesOnly(work.collectivePattern, group: group, warmup: c.warmup, steps: c.steps)
                let stepMax = group.allReduceMax(local.step), kernelMax = group.allReduceMax(local.kernel)
                let stepMin = group.allReduceMax(local.step.map { -$0 }).map { -$0 }
                // The modelled step: every rank arrives when the slowest has done its local
                // work, then the collectives run; the fastest rank waits max − min.
                m.samples = StepSamples(step: zip(stepMax, comm).map { $0 + $1 }, kernel: kernelMax, collective: comm,
                                        wait: zip(stepMax, stepMin).map { $0 - $1 })
            }
            world.quietBarrier()
        }
        if let work {
            m.weightBytes = work.weightBytes
            // The step's all-reduces as the workload issues them (none at tp 1: a group of one communicates nothing).
            m.allReduceFloats = c.tp > 1 ? work.collectivePattern.allReduceFloats : []
        }
    }

    func makeRow(_ c: SweepConfig, cost: DecodeCost, group: Int, hosts: [String], seqs: Int, measured m: Measurement,
                 stepStats: SampleStats, jobTokensPerSecond: Double) throws -> SweepRow {
        let kernelStats = SampleStats(m.samples.kernel)
        let bytes = try cost.kernelBytes(context: c.context, sequences: seqs, layers: c.nLayer)
        let flops = try cost.kernelFlops(context: c.context, sequences: seqs, layers: c.nLayer)
        let tick = MPI.wtick()
        if stepStats.median < 100 * tick {
            FileHandle.standardError.write(Data("mlra: warning: \(c.label): median step \(stepStats.median) s is within 100 ticks of the timer (\(tick) s)\n".utf8))
        }
        var row = SweepRow()
        try row.set(metadata)
        try row.set(Dictionary(uniqueKeysWithValues: c.keyFields))   // the key's columns, seed, device, timing_mode and calib_source among them
        row.date_utc = ISO8601DateFormatter().string(from: Date())
        row.host = MPI.processorName
        row.group_nodes = "\(hosts.count)"; row.group_hosts = hosts.joined(separator: ";")
        row.config_id = c.configID
        row.dp = "\(c.isDeviceShare ? 1 : c.replicas)"; row.tp_group = "\(group)"; row.block_width = "\(layoutBlockWidth(c))"
        row.kv_elems_per_token = "\(cost.kvElemsPerToken)"; row.kv_bytes_per_token = "\(cost.kvBytesPerToken)"
        row.kv_bytes_per_rank = "\(cost.kvBytesPerToken * c.context * seqs * c.nLayer)"
        row.kernel_bytes_per_step = "\(bytes)"; row.kernel_flops_per_step = "\(flops)"
        row.weight_bytes_per_rank = "\(m.weightBytes)"
        row.allreduce_bytes_per_step = "\(4 * m.allReduceFloats.reduce(0, +))"
        row.allreduce_count_per_step = "\(m.allReduceFloats.count)"
        if !m.allReduceFloats.isEmpty { row.allreduce_path = "mpi-host" }   // a device's measurement names its own (m.columns)
        row.validation = "pass"; row.validation_max_err = String(format: "%.3e", m.maxError)
        row.warmup_steps = "\(c.warmup)"; row.timed_steps = "\(c.steps)"; row.timer_resolution_us = fmt(tick * 1e6)
        row.step_us_median = fmt(stepStats.median * 1e6); row.step_us_p10 = fmt(stepStats.p10 * 1e6)
        row.step_us_p90 = fmt(stepStats.p90 * 1e6); row.step_us_min = fmt(stepStats.min * 1e6); row.step_us_max = fmt(stepStats.max * 1e6)
        row.kernel_us_median = fmt(kernelStats.median * 1e6); row.kernel_us_p10 = fmt(kernelStats.p10 * 1e6)
        row.kernel_us_p90 = fmt(kernelStats.p90 * 1e6)
        if c.scope != .kernel {
            let collective = SampleStats(m.samples.collective)
            row.allreduce_us_median = fmt(collective.median * 1e6)
            row.allreduce_us_p10 = fmt(collective.p10 * 1e6); row.allreduce_us_p90 = fmt(collective.p90 * 1e6)
            row.imbalance_us_median = fmt(SampleStats(m.samples.wait).median * 1e6)
        }
        // The group's own figure and the job's sum over its replicas, under two names: one
        // name for both made a sum over a configuration's rows count the job dp times.
        row.group_tokens_per_s = fmt(Double(seqs) / stepStats.median)
        row.job_tokens_per_s = fmt(jobTokensPerSecond)
        row.achieved_gbs = fmt(Double(bytes) / kernelStats.median / 1e9)
        row.achieved_gflops = fmt(Double(flops) / kernelStats.median / 1e9)
        try row.set(rowCalibration(c).columns(dtype: c.dtype, bytes: Double(bytes), flops: Double(flops), kernelSeconds: kernelStats.median))
        try row.set(m.columns)
        return row
    }

    func layoutBlockWidth(_ c: SweepConfig) -> Int {
        (try? c.attentionConfig.layout() as? LatentLayout)??.blockWidth ?? 0
    }
}

func fmt(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "" }

/// The harness's git revision: MLRA_GIT_REV, else `git rev-parse` beside the executable, else "unknown".
public func gitRevision() -> String {
    if let rev = ProcessInfo.processInfo.environment["MLRA_GIT_REV"], !rev.isEmpty { return rev }
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for dir in [exe.path, FileManager.default.currentDirectoryPath] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        p.arguments = ["-C", dir, "rev-parse", "--short", "HEAD"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { continue }
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if p.terminationStatus == 0, !out.isEmpty { return out }
    }
    return "unknown"
}
