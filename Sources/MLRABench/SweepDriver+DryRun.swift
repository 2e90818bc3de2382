import Foundation
import MLRACore
import MLRACuda

/// One measurement a sweep would make (a configuration at one repeat), as its dry run plans it.
public struct PlannedMeasurement: Sendable {
    public enum Status: Sendable, Equatable {
        case run
        /// Skipped by the same rules as the sweep's (`skipReason`, then the memory check).
        case skipped(String)
        /// Its key is already in --out: a resume skips it.
        case present
    }
    public let config: SweepConfig
    public let status: Status
    /// The busiest rank's predicted bytes (MemoryFootprint); nil where not predicted
    /// (a cuda configuration: the footprint needs the bound GPU).
    public let memoryPerRank: Int?
    /// Seconds (SweepPrediction); nil without a calibration for the configuration.
    public let seconds: Double?
}

/// What `mlra sweep --dry-run` prints.
public struct SweepPlan: Sendable {
    public var measurements: [PlannedMeasurement] = []
    /// Thread counts (cpu) and "cuda" whose configurations have no calibration to predict from.
    public var uncalibrated: [String] = []
}

extension SweepDriver {
    /// The sweep's plan without measuring or writing anything: the configurations of
    /// this array task, each repeat, with the skips the sweep would make, their
    /// predicted memory and time. Reads --out, its calibration store and the
    /// --calibration files; creates, locks and changes no file (no noise probe, no
    /// calibration, no GPU bound). Collective, like the sweep's own memory check; the
    /// plan is complete on world rank 0. An empty `options.out`: no CSV to resume.
    public func dryRun() throws -> SweepPlan {
        let mine = try selectedConfigurations()
        let doneText = try world.collectively { () throws -> String in
            guard world.rank == 0 else { return "" }
            try loadCalibrationInputs()
            guard !options.out.isEmpty, FileManager.default.fileExists(atPath: options.out) else { return "" }
            let info = try AppendOnlyCSV.inspect(path: options.out, columns: ResultsSchema.columns)
            try checkArrayShape(info.rows)
            return info.rows.map(SweepConfig.key(row:)).joined(separator: "\n")
        }
        let done = Set(world.broadcast(doneText).split(separator: "\n").map(String.init))

        // The calibrations the sweep would take without measuring: the store's (with its
        // calib_source), else --calibration's; what it would measure stays unknown.
        let calText = try world.collectively { () throws -> String in
            guard world.rank == 0 else { return "" }
            var store: CalibrationStore
            if let stored = storedCalibration, !stored.cpu.isEmpty {
                store = CalibrationStore(cpu: [:], cpuSource: stored.cpuSource)
                for t in Set(mine.map(\.threads)) { if let cal = stored.cpu(threads: t) { store.cpu["\(t)"] = cal } }
            } else {
                store = CalibrationStore(cpu: [:], cpuSource: try calibrationSource(calibrationFile))
                if let cal = calibrationFile { for t in Set(mine.map(\.threads)) { store.cpu["\(t)"] = cal } }
            }
            if let cal = storedCalibration?.gpu, let source = storedCalibration?.gpuSource {
                store.gpu = cal; store.gpuSource = source
            } else {
                store.gpu = gpuCalibrationFile; store.gpuSource = "gpu-" + (try calibrationSource(gpuCalibrationFile))
            }
            return String(decoding: try JSONEncoder().encode(store), as: UTF8.self)
        }
        let store = try JSONDecoder().decode(CalibrationStore.self, from: Data(world.broadcast(calText).utf8))
        calibrations = Dictionary(uniqueKeysWithValues: store.cpu.compactMap { k, v in Int(k).map { ($0, v) } })
        gpuCalibration = store.gpu
        calibSources = [.cpu: store.cpuSource, .cuda: store.gpuSource ?? ""]
        isolate = world.broadcast(world.rank == 0 ? (localIsolationVerdict ? "1" : "0") : "") == "1"
        let configs = mine.map(withRunSettings)

        let repeats = try spec.checkedRepeats()
        var plan = SweepPlan()
        var skips = [String?]()
        for c in configs {
            // The same rules, in the same order, as the sweep; the memory check is the
            // sweep's own (every node judges its ranks) for cpu configurations. A cuda one
            // is judged against the GPU's free memory when the sweep binds it.
            var reason = c.skipReason()
            if reason == nil, c.device == .cpu { reason = try memoryShortfall(c) }
            skips.append(reason)
        }
        for round in 0..<repeats {
            for (i, base) in configs.enumerated() {
                var c = base
                c.repeatIndex = round
                let status: PlannedMeasurement.Status = done.contains(c.key) ? .present : skips[i].map { .skipped($0) } ?? .run
                var memory: Int?
                if c.device == .cpu { memory = (try? c.footprint(backend: .cpu(lastLevelCacheBytes: llcBytes(c))))?.total }
                plan.measurements.append(PlannedMeasurement(config: c, status: status, memoryPerRank: memory,
                                                            seconds: c.skipReason() == nil ? predictedSeconds(c) : nil))
            }
        }
        let missing = configs.filter { $0.skipReason() == nil && knownCalibration($0) == nil }
        plan.uncalibrated = Set(missing.map { $0.device == .cuda ? "cuda" : "\($0.threads)" }).sorted()
        return plan
    }
}
