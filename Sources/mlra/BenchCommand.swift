import ArgumentParser

// Placeholder: filled in by the kernel/roofline work (issue 4).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "(not yet implemented)")
    func run() throws { throw CleanExit.message("mlra bench is not implemented yet") }
}
