import Foundation
import MLRACore

/// Runs `body`; a HarnessError becomes one line on stderr and exit status 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as HarnessError {
        FileHandle.standardError.write(Data("mlra: error: \(e.message)\n".utf8))
        exit(1)
    }
}
