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
            var command = try parseAsRoot(oldColdCacheForm(joiningNegativeValues(Array(CommandLine.arguments.dropFirst()))))
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
    /// `sweep --cold-cache true|false` (and `=true|false`), its form before it became the flag
    /// pair bench has, becomes `--cold-cache` / `--no-cold-cache`, with a warning, so that old
    /// scripts still run. A flag cannot take a value, so this is done before parsing.
    static func oldColdCacheForm(_ args: [String]) -> [String] {
        guard args.first == "sweep" else { return args }
        var out = [String](), i = 0
        while i < args.count {
            var value: String?
            if args[i] == "--cold-cache", i + 1 < args.count, ["true", "false"].contains(args[i + 1]) {
                value = args[i + 1]; i += 1
            } else if ["--cold-cache=true", "--cold-cache=false"].contains(args[i]) {
                value = String(args[i].dropFirst("--cold-cache=".count))
            }
            if let value {
                let flag = value == "true" ? "--cold-cache" : "--no-cold-cache"
                FileHandle.standardError.write(Data("mlra: warning: --cold-cache \(value) is deprecated; use \(flag)\n".utf8))
                out.append(flag)
            } else {
                out.append(args[i])
            }
            i += 1
        }
        return out
    }

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
