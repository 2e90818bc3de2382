import ArgumentParser
import MLRACore

@main
struct MLRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mlra",
        abstract: "Tensor-parallel decode harness for Multi-Head Low-Rank Attention and its relatives.",
        discussion: "Variants: \(VariantName.allCases.map(\.rawValue).joined(separator: ", ")). Run under mpirun for tensor parallelism.",
        version: HarnessVersion.string,
        subcommands: [SweepCommand.self, ForwardCommand.self, GenerateCommand.self, PlanCommand.self, WeightsCommand.self, CalibrateCommand.self, BenchCommand.self])
}
