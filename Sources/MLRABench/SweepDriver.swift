import Foundation
import MLRACore
import MLRAParallel

public struct SweepOptions {
    public var out: String
    public var samples: String?
    public var quiet = false
    /// nil = auto: isolate when the node runs more compute threads than it has cores.
    public var isolate: Bool?
    public var arrayTask = 0, arrayCount = 1
    public var calibrationPath: String?
    public var quickCalibration = false
    public var seed: UInt64 = 0
    /// --allow-cross-node-tp: TP groups may span nodes (by default a degree that cannot stay inside a node is refused).
    public var allowCrossNodeTP = false
    /// Self-test: perturb the checked output so validation must fail.
    public var injectValidationError = false
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
    /// --calibration, loaded (on rank 0) with the other inputs, before any output is touched.
    var calibrationFile: Calibration?
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
        let all = try world.collectively { try spec.configurations(worldSize: world.size) }
        try world.collectively {
            guard options.arrayCount >= 1, options.arrayTask >= 0, options.arrayTask < options.arrayCount else {
                throw HarnessError("--array-task \(options.arrayTask) must lie in 0..<\(options.arrayCount) (--array-count)")
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

        // Rank 0 owns the files; resuming skips configurations already present.
        let doneText = try world.collectively { () throws -> String in
            guard world.rank == 0 else { return "" }
            return try openOutputs().joined(separator: "\n")
        }
        let done = Set(world.broadcast(doneText).split(separator: "\n").map(String.init))

        try prepareMetadata(threadCounts: Array(Set(mine.map(\.threads))).sorted())
        // The run-wide settings that are part of the resume key, now that every rank agreed on them.
        let configs = mine.map { c in
            var c = c
            c.seed = options.seed; c.isolated = isolate; c.calibSource = metadata["calib_source"]!
            return c
        }
        var summary = SweepSummary()
        let total = configs.count
        for (i, config) in configs.enumerated() {
            let stop = world.allReduce(Double(sweepStopRequested), max: true)
            if stop > 0 {
                summary.interrupted = true
                progress("interrupted: stopping before configuration \(i + 1)/\(total); finished rows are in \(options.out); rerun the same command to resume")
                break
            }
            let tag = "[\(i + 1)/\(total)] \(config.label)"
            if done.contains(config.key) { summary.resumed += 1; progress("\(tag): already in \(options.out), skipped"); continue }
            if let reason = config.skipReason() { summary.skipped += 1; progress("\(tag): skipped: \(reason)"); continue }
            if let reason = memoryShortfall(config) { summary.skipped += 1; progress("\(tag): skipped: \(reason)"); continue }
            let median = try measure(config)
            summary.measured += 1
            let elapsed = MPI.wtime() - started
            let eta = elapsed / Double(i + 1) * Double(total - i - 1)
            progress(String(format: "%@: step median %.1f µs · elapsed %.0f s · ETA %.0f s", tag, median * 1e6, elapsed, eta))
        }
        progress("sweep done: \(summary.measured) measured, \(summary.resumed) already present, \(summary.skipped) skipped → \(options.out)")
        return summary
    }

    /// Rank 0: checks every input, then locks, repairs and opens the outputs; returns
    /// the resume keys already in --out. Nothing is modified until everything that
    /// could refuse the run has been checked: --calibration, both paths (and that they
    /// differ), the locks, both files' headers. (Only the lock files are created first:
    /// the headers must be read under the lock.)
    func openOutputs() throws -> [String] {
        if let path = options.calibrationPath { calibrationFile = try Calibration.load(path: path) }
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
        // A file holds one share of one array shape. Resuming a task file with another
        // shape would measure again what the file's own shape gave to another task
        // file, and the merge would see one configuration twice.
        for row in outInfo.rows where row["array_count"] != "\(options.arrayCount)" || row["array_task"] != "\(options.arrayTask)" {
            let task = row["array_task"] ?? "", count = row["array_count"] ?? ""
            throw HarnessError("\(options.out) holds rows of array task \(task) of \(count) (columns array_task, array_count), "
                               + "this run is task \(options.arrayTask) of \(options.arrayCount); resume it with "
                               + "--array-task \(task) --array-count \(count), or write to a new file")
        }
        results = try AppendOnlyCSV(outInfo)
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
        }
        return outInfo.rows.map(SweepConfig.key(row:))
    }

    /// Calibrations, one per thread count the sweep uses (rank 0 measures while the
    /// others sleep; a `--calibration` file serves every row and says its own thread
    /// count), the timing mode, and the run's metadata columns — all decided on rank 0
    /// and broadcast, so every rank takes the same decisions.
    func prepareMetadata(threadCounts: [Int]) throws {
        let calText = try world.collectively { () throws -> String in
            guard world.rank == 0 else { return "" }
            var cals = [String: Calibration]()
            if let cal = calibrationFile {
                for t in threadCounts { cals["\(t)"] = cal }
            } else {
                for t in threadCounts {
                    let cal = try Calibration.measure(threads: t, quick: options.quickCalibration)
                    progress(String(format: "calibration (%d thread%@): read %.1f GB/s, triad %.1f GB/s, sgemm %.1f GFLOP/s, FMA loop %.1f GFLOP/s",
                                    cal.threads, cal.threads == 1 ? "" : "s", cal.readGBs, cal.triadGBs, cal.sgemmGFlops, cal.fmaGFlops))
                    cals["\(t)"] = cal
                }
            }
            return String(decoding: try JSONEncoder().encode(cals), as: UTF8.self)
        }
        let decoded = try JSONDecoder().decode([String: Calibration].self, from: Data(world.broadcast(calText).utf8))
        calibrations = Dictionary(uniqueKeysWithValues: decoded.compactMap { k, v in Int(k).map { ($0, v) } })
        isolate = world.broadcast(world.rank == 0 ? (localIsolationVerdict ? "1" : "0") : "") == "1"
        let runId = world.broadcast(world.rank == 0 ? String(UInt64.random(in: 0...UInt64.max), radix: 16) : "")
        let calibSource = world.broadcast(world.rank == 0 ? try calibrationSource() : "")
        metadata = [
            "schema_version": ResultsSchema.version, "run_id": runId, "harness_version": HarnessVersion.string,
            "git_rev": world.broadcast(world.rank == 0 ? gitRevision() : ""), "mpi_library": MPI.libraryVersion,
            "world_size": "\(world.size)", "calib_source": calibSource,
            "array_task": "\(options.arrayTask)", "array_count": "\(options.arrayCount)",
        ]
    }

    /// The calibration's identity (column calib_source, part of the resume key: the
    /// roofline columns are computed from it): "measured" by this run (each run's
    /// measurement differs a little, but it is the same procedure), or "file:" and a
    /// hash of the --calibration file's values (not its bytes: reformatting the JSON
    /// does not change the calibration).
    func calibrationSource() throws -> String {
        guard let cal = calibrationFile else { return options.quickCalibration ? "measured-quick" : "measured" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return "file:" + fnv1aHex([UInt8](try encoder.encode(cal)))
    }

    func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        if stat(a, &sa) == 0, stat(b, &sb) == 0 { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
        func norm(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        return norm(a) == norm(b)
    }

    /// The calibration of a configuration's thread count (the roofline its row is held to).
    func calibration(_ c: SweepConfig) -> Calibration { calibrations[c.threads] ?? calibrations.values.first! }

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
    func memoryShortfall(_ c: SweepConfig) -> String? {
        var message = ""
        if topology.localRank == 0, world.rank == 0 || !c.isDeviceShare, let need = try? predictedBytesPerRank(c),
           let short = MemoryBudget.shortfall(bytesPerRank: need, ranks: c.isDeviceShare ? 1 : topology.localSize) {
            message = topology.nodeCount > 1 ? "on \(topology.hostOf[topology.nodeOf[world.rank]]): \(short)" : short
        }
        let flags = world.allGatherDoubles([message.isEmpty ? 0 : 1])
        guard let first = flags.firstIndex(of: 1) else { return nil }
        return world.broadcast(message, root: first)
    }

    func predictedBytesPerRank(_ c: SweepConfig) throws -> Int {
        let layout = try c.attentionConfig.layout()
        let cost = try DecodeCost(layout, tp: c.tp, dtype: c.dtype)
        let seqs = c.isDeviceShare ? c.batch : c.sequencesPerReplica
        let rows = c.context + c.warmup + c.steps + 8
        let cache = cost.kvBytesPerToken * rows * seqs * c.nLayer
        switch c.scope {
        case .kernel:
            return c.coldCache ? max(cache, 4 * calibration(c).llcBytes) + cache : cache
        case .layer:
            let full = layout.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }
            return cache + cost.weightElemsPerRank * 4 + full * 12
        case .model:
            let m = try ModelLayout(config: c.attentionConfig)
            let full = m.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }
            return cache + full * 4 / c.tp + full * 4 + m.vocabSize * m.nEmbd * 4
        }
    }

    /// Validates and times one configuration; returns the median step seconds.
    func measure(_ c: SweepConfig) throws -> Double {
        let layout = try c.attentionConfig.layout()
        let cost = try DecodeCost(layout, tp: c.tp, dtype: c.dtype)
        let mode = c.timingMode
        let g: TPGroups? = c.isDeviceShare ? nil : try groups(tp: c.tp)
        let active = c.isDeviceShare ? world.rank == 0 : g!.replica < c.replicas
        let tpRank = g?.tpRank ?? 0
        let seqs = c.isDeviceShare ? c.batch : c.sequencesPerReplica
        // Every scope runs this kernel object; its ISA (the loops it dispatches to) goes into the row.
        let kernel = try TiledAttentionKernel(threads: c.threads)
        let timed = TimedKernel(kernel)
        let weights = SeededWeights(seed: options.seed)

        // Build this rank's workload and validate it before timing.
        let (work, check) = try world.collectively { () throws -> (StepWorkload?, ValidationResult) in
            guard active else { return (nil, ValidationResult(maxError: 0, violation: nil)) }
            let rank = c.isDeviceShare ? try KernelWorkload.busiestRank(layout, tp: c.tp) : tpRank
            let capacity = c.context + c.warmup + c.steps + 1
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
                return (LayerStep(shard: shard, sequences: seqs, context: c.context, capacity: capacity, dtype: c.dtype, kernel: timed), check)
            case .model:
                let model = try DecoderShard(layout: ModelLayout(config: c.attentionConfig), tp: c.tp, rank: rank, weights: weights)
                let check = try Validation.model(c, model: model, weights: weights, group: g!.group, kernel: timed.inner,
                                                 injectError: options.injectValidationError)
                return (ModelStep(model: model, sequences: seqs, context: c.context, capacity: capacity, dtype: c.dtype, kernel: timed), check)
            }
        }
        try world.collectively {
            if let v = check.violation { throw HarnessError("validation failed for \(c.label): \(v)") }
        }
        let maxError = world.allReduce(check.maxError, max: true)

        // Time it.
        var samples = StepSamples(step: [], kernel: [], collective: [])
        switch mode {
        case .concurrent:
            if active, let work { samples = TimingProtocol.concurrent(work, group: g!.group, kernel: timed, warmup: c.warmup, steps: c.steps) }
            world.quietBarrier()
        case .isolated, .deviceShare:
            let local = TimingProtocol.isolatedLocal(work, world: world, tpSize: c.tp, tpRank: tpRank, kernel: active ? timed : nil,
                                                     warmup: c.warmup, steps: c.steps)
            if mode == .deviceShare {
                samples = StepSamples(step: local.step, kernel: local.kernel, collective: [Double](repeating: 0, count: local.step.count))
            } else if active, let work, let group = g?.group {
                let comm = TimingProtocol.collectivesOnly(work.collectivePattern, group: group, warmup: c.warmup, steps: c.steps)
                let stepMax = group.allReduceMax(local.step), kernelMax = group.allReduceMax(local.kernel)
                samples = StepSamples(step: zip(stepMax, comm).map { $0 + $1 }, kernel: kernelMax, collective: comm)
            }
            world.quietBarrier()
        }

        // Rows: each active group's rank 0 describes its group; world rank 0 writes them all at once.
        let reporter = active && tpRank == 0
        let stepStats = reporter ? SampleStats(samples.step) : nil
        let tokensPerSecond = world.allReduce(reporter ? Double(seqs) / stepStats!.median : 0, max: false)
        var rowJSON = ""
        var sampleLines = [[String: String]]()
        if reporter, let stepStats, let work {
            let hosts = g.map { $0.hosts(ofReplica: $0.replica) } ?? [MPI.processorName]
            let row = try makeRow(c, cost: cost, mode: mode, group: g?.replica ?? 0, hosts: hosts, seqs: seqs, samples: samples, stepStats: stepStats,
                              tokensPerSecond: tokensPerSecond, maxError: maxError, work: work, kernelISA: kernel.isa)
            rowJSON = String(decoding: try JSONEncoder().encode(row), as: UTF8.self)
            if options.samples != nil {
                sampleLines = samples.step.indices.map { k in
                    ["run_id": metadata["run_id"]!, "config_id": c.configID, "variant": c.variant.rawValue, "scope": c.scope.rawValue, "tp": "\(c.tp)",
                     "tp_group": "\(g?.replica ?? 0)", "context": "\(c.context)", "batch": "\(c.batch)", "n_head": "\(c.heads)",
                     "kv_lora_rank": "\(c.kvRank)", "kv_dtype": c.dtype.rawValue, "threads": "\(c.threads)", "timing_mode": mode.rawValue,
                     "step_index": "\(k)", "step_us": fmt(samples.step[k] * 1e6), "kernel_us": fmt(samples.kernel[k] * 1e6),
                     "allreduce_us": c.scope == .kernel ? "" : fmt(samples.collective[k] * 1e6)]
                }
            }
        }
        let replicas = c.isDeviceShare ? 1 : c.replicas
        var rows = [[String: String]](), sampleRows = [[String: String]]()
        for replica in 0..<replicas {
            let root = g?.ranks(ofReplica: replica).first ?? 0   // the replica's TP rank 0 wrote its row
            let text = world.broadcast(rowJSON, root: root)
            let samplesText = world.broadcast(String(decoding: (try? JSONEncoder().encode(sampleLines)) ?? Data(), as: UTF8.self), root: root)
            if world.rank == 0 {
                rows.append(try JSONDecoder().decode([String: String].self, from: Data(text.utf8)))
                sampleRows += (try? JSONDecoder().decode([[String: String]].self, from: Data(samplesText.utf8))) ?? []
            }
        }
        try world.collectively {
            guard world.rank == 0 else { return }
            // Samples first, rows last: a row in the results means its samples are on disk.
            // If the rows cannot be written, the samples just written are cut off again.
            let samplesStart = try samplesFile?.size()
            try samplesFile?.append(sampleRows)
            do { try results!.append(rows) } catch {
                if let samplesFile, let samplesStart { try? samplesFile.truncate(to: samplesStart, why: "the samples of an unwritten row") }
                throw error
            }
        }
        let median = world.broadcast(rows.first?["step_us_median"] ?? "0")
        return (Double(median) ?? 0) / 1e6
    }

    func makeRow(_ c: SweepConfig, cost: DecodeCost, mode: TimingMode, group: Int, hosts: [String], seqs: Int, samples: StepSamples,
                 stepStats: SampleStats, tokensPerSecond: Double, maxError: Double, work: StepWorkload,
                 kernelISA: KernelISA) throws -> [String: String] {
        let kernelStats = SampleStats(samples.kernel)
        let bytes = try cost.kernelBytes(context: c.context, sequences: seqs, layers: c.nLayer)
        let flops = try cost.kernelFlops(context: c.context, sequences: seqs, layers: c.nLayer)
        let cal = calibration(c)
        let roofline = cal.rooflineSeconds(bytes: Double(bytes), flops: Double(flops))
        // The step's all-reduces as the workload issues them (none at tp 1: a group of one communicates nothing).
        let allReduces = c.tp > 1 ? work.collectivePattern.allReduceFloats : []
        let tick = MPI.wtick()
        if stepStats.median < 100 * tick {
            FileHandle.standardError.write(Data("mlra: warning: \(c.label): median step \(stepStats.median) s is within 100 ticks of the timer (\(tick) s)\n".utf8))
        }
        var row = metadata
        row["date_utc"] = ISO8601DateFormatter().string(from: Date())
        row["calib_threads"] = "\(cal.threads)"
        row["calib_read_gbs"] = fmt(cal.readGBs); row["calib_triad_gbs"] = fmt(cal.triadGBs)
        row["calib_sgemm_gflops"] = fmt(cal.sgemmGFlops); row["calib_fma_gflops"] = fmt(cal.fmaGFlops)
        row["calib_fma_width"] = cal.fmaWidth
        row["host"] = MPI.processorName
        row["group_nodes"] = "\(hosts.count)"; row["group_hosts"] = hosts.joined(separator: ";")
        for (k, v) in c.keyFields { row[k] = v }   // the key's columns, seed, timing_mode and calib_source among them
        row["config_id"] = c.configID
        let latent = layoutBlockWidth(c)
        row["dp"] = "\(c.isDeviceShare ? 1 : c.replicas)"; row["tp_group"] = "\(group)"; row["block_width"] = "\(latent)"
        row["kernel_isa"] = kernelISA.rawValue
        row["kv_elems_per_token"] = "\(cost.kvElemsPerToken)"; row["kv_bytes_per_token"] = "\(cost.kvBytesPerToken)"
        row["kv_bytes_per_rank"] = "\(cost.kvBytesPerToken * c.context * seqs * c.nLayer)"
        row["kernel_bytes_per_step"] = "\(bytes)"; row["kernel_flops_per_step"] = "\(flops)"
        row["weight_bytes_per_rank"] = "\(work.weightBytes)"
        row["allreduce_bytes_per_step"] = "\(4 * allReduces.reduce(0, +))"
        row["allreduce_count_per_step"] = "\(allReduces.count)"
        row["validation"] = "pass"; row["validation_max_err"] = String(format: "%.3e", maxError)
        row["warmup_steps"] = "\(c.warmup)"; row["timed_steps"] = "\(c.steps)"; row["timer_resolution_us"] = fmt(tick * 1e6)
        row["step_us_median"] = fmt(stepStats.median * 1e6); row["step_us_p10"] = fmt(stepStats.p10 * 1e6)
        row["step_us_p90"] = fmt(stepStats.p90 * 1e6); row["step_us_min"] = fmt(stepStats.min * 1e6); row["step_us_max"] = fmt(stepStats.max * 1e6)
        row["kernel_us_median"] = fmt(kernelStats.median * 1e6); row["kernel_us_p10"] = fmt(kernelStats.p10 * 1e6)
        row["kernel_us_p90"] = fmt(kernelStats.p90 * 1e6)
        row["allreduce_us_median"] = c.scope == .kernel ? "" : fmt(SampleStats(samples.collective).median * 1e6)
        row["tokens_per_s"] = fmt(tokensPerSecond)
        row["achieved_gbs"] = fmt(Double(bytes) / kernelStats.median / 1e9)
        row["achieved_gflops"] = fmt(Double(flops) / kernelStats.median / 1e9)
        row["roofline_us"] = fmt(roofline * 1e6); row["roofline_fraction"] = fmt(roofline / kernelStats.median)
        return row
    }

    func layoutBlockWidth(_ c: SweepConfig) -> Int {
        (try? c.attentionConfig.layout() as? LatentLayout)??.blockWidth ?? 0
    }
}

func fmt(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "" }

/// The harness's git revision: MLRA_GIT_REV, else `git rev-parse` beside the executable, else "unknown".
func gitRevision() -> String {
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
