import ArgumentParser
import Foundation
import MLRACore

/// The exit status of every mlra command: 64 (EX_USAGE, sysexits.h) when the command
/// line is wrong (an unknown or missing flag, a flag value that is malformed or out of
/// range, flags that conflict), 1 for every other failure (files, MPI, devices, memory
/// refused at run time, results that fail validation). `MLRA.main` and `runParallel`
/// map errors through here and nowhere else.
enum ExitStatus {
    static let usage: Int32 = 64
    static let failure: Int32 = 1

    static func of(_ kind: HarnessError.Kind) -> Int32 { kind == .usage ? usage : failure }
}

/// The one line an error prints on stderr: `mlra: error: …`, a usage error pointing at
/// the help of the subcommand it came from.
func errorLine(_ message: String, _ kind: HarnessError.Kind) -> String {
    let first = message.split(separator: "\n").first.map(String.init) ?? message
    guard kind == .usage else { return "mlra: error: \(first)\n" }
    let names = MLRA.configuration.subcommands.compactMap { $0.configuration.commandName }
    let sub = CommandLine.arguments.dropFirst().first.flatMap { names.contains($0) ? " \($0)" : nil } ?? ""
    return "mlra: error: \(first) (see 'mlra help\(sub)')\n"
}

/// Prints the error's line and exits with its status.
func exitReporting(_ message: String, _ kind: HarnessError.Kind) -> Never {
    FileHandle.standardError.write(Data(errorLine(message, kind).utf8))
    Foundation.exit(ExitStatus.of(kind))
}

/// Runs a check of flag values: a HarnessError it throws (the library's own wording of
/// a bad value) is a usage error.
func checkingFlags<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as HarnessError { throw HarnessError.usage(e.message) }
}
