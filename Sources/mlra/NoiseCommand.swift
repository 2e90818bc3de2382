import ArgumentParser
import Foundation
import MLRABench
import MLRACore

/// What `mlra noise` prints.
enum NoiseFormat: String, ExpressibleByArgument, CaseIterable { case table, json }

/// `mlra noise`: the FTQ noise probe on every rank at once (NoiseProbe).
struct NoiseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noise",
        abstract: "Measure this node's noise: the FTQ probe on every rank at once, with the spectrum of the interference.",
        discussion: "Each rank counts units of fixed work in consecutive fixed-length quanta; the report gives the mean and "
            + "coefficient of variation of the work per quantum, the fraction of quanta that lost more than 10% of it, and "
            + "the strongest periodic components of the series (FFTW). Run it under mpirun with the ranks of a job.")

    @Option(name: .customLong("noise-budget"), help: "Probing time in seconds (default 3; the spectrum's resolution is 1 / budget).")
    var noiseBudget: Double?
    @Option(name: .customLong("budget"), help: .hidden) var budgetOld: Double?
    @Option(name: .customLong("quantum-us"), help: "Length of one quantum in microseconds (the spectrum reaches 1 / (2 quantum)).")
    var quantumMicroseconds = 100.0
    @Option(help: "Also write the whole report (every rank's summary and binned spectrum) as JSON to this file (the analysis reads it: --noise).")
    var out: String?
    @Option(help: "table or json (on standard output).")
    var format: NoiseFormat = .table

    func validate() throws {
        _ = try renamed(noiseBudget, "--noise-budget", old: budgetOld, "--budget")
        do { try settings.validate() } catch let e as HarnessError { throw ValidationError(e.message) }
    }

    var settings: NoiseProbe.Settings {
        NoiseProbe.Settings(quantum: quantumMicroseconds * 1e-6, budget: noiseBudget ?? budgetOld ?? 3)
    }

    func run() throws {
        try runParallel { world in
            if let out { try world.collectively { try checkWritable(out) } }
            let report = try NoiseReport.measure(world: world, settings: settings)
            guard world.rank == 0 else { return }
            let json = try report.json()
            if let out { try writeAtomically(json, to: out) }
            if format == .json { print(String(decoding: json, as: UTF8.self)); return }
            let s = settings
            print("mlra \(HarnessVersion.string) noise: \(report.ranks.count) rank(s) on \(report.hosts.count) node(s), "
                  + "\(s.quanta) quanta of \(String(format: "%g", s.quantum * 1e6)) µs (\(String(format: "%g", s.budget)) s), "
                  + "resolution \(String(format: "%.2f", 1 / s.budget)) Hz, up to \(String(format: "%g", 0.5 / s.quantum)) Hz")
            print(report.tableLines().joined(separator: "\n"))
        }
    }
}
