import ArgumentParser

// Placeholder: filled in by the kernel/roofline work (issue 4).
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "calibrate", abstract: "(not yet implemented)")
    func run() throws { throw CleanExit.message("mlra calibrate is not implemented yet") }
}
