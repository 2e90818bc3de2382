import Foundation
import ArgumentParser
import MLRACore

@main
struct MLRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mlra",
        abstract: "Tensor-parallel decode harness for Multi-Head Low-Rank Attention and its relatives.",
        discussion: "Variants: \(VariantName.allCases.map(\.rawValue).joined(separator: ", ")). Run under mpirun for tensor parallelism.",
        version: HarnessVersion.string,
        subcommands: [SweepCommand.self, ForwardCommand.self, GenerateCommand.self, PlanCommand.self, WeightsCommand.self, CalibrateCommand.self, BenchCommand.self, SelftestCommand.self, KernelsCommand.self])

    /// Usage errors are one line too (`mlra: error: …`, exit 64); help and version print as usual.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let line = text.hasPrefix("Error: ") ? String(text.dropFirst(7)) : text
            FileHandle.standardError.write(Data("mlra: error: \(line) (see 'mlra help')\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}
