import Foundation
import ArgumentParser
import MLRACore
import MLRAParallel

@main
struct MLRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mlra",
        abstract: "Tensor-parallel decode harness for Multi-Head Low-Rank Attention and its relatives.",
        discussion: "Variants: \(VariantName.allCases.map(\.rawValue).joined(separator: ", ")). Run under mpirun for tensor parallelism.",
        version: HarnessVersion.string,
        subcommands: [SweepCommand.self, ForwardCommand.self, GenerateCommand.self, PlanCommand.self, WeightsCommand.self, CalibrateCommand.self, BenchCommand.self, NoiseCommand.self, SelftestCommand.self, KernelsCommand.self])

    /// Every error is one line `mlra: error: …` with the status of ExitStatus; help and
    /// version print as usual.
    static func main() {
        do {
            var command = try parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let e as HarnessError {
            exitReporting(e.message, e.kind)
        } catch let e as AgreedError {
            exitReporting(e.message, e.kind)
        } catch {
            // ArgumentParser's own: parse and validation errors (usage), help and version (success).
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }
            let text = message(for: error)
            let line = text.hasPrefix("Error: ") ? String(text.dropFirst(7)) : text
            exitReporting(line, code == .validationFailure ? .usage : .failure)
        }
    }

    /// `--context -5` becomes `--context=-5`. ArgumentParser reads "-5" as a short flag
    /// and reports "Missing value for '--context'"; joined, the value reaches the
    /// command's own check, which names the real problem ("must be positive, got -5").
    /// mlra has no positional arguments and no short flag is a digit, so "-" and a digit
    /// (a number, or a list such as "-5,64") is always an option's value.
    static func joiningNegativeValues(_ args: [String]) -> [String] {
        var out = [String]()
        for arg in args {
            if let last = out.last, last.hasPrefix("--"), !last.contains("="), arg.hasPrefix("-"), arg.dropFirst().first?.isNumber == true {
                out[out.count - 1] = last + "=" + arg
            } else {
                out.append(arg)
            }
        }
        return out
    }
}
