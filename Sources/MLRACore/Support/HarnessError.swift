/// The one error type the harness throws for bad input or impossible requests.
/// Its message is a single plain sentence naming the values involved; the CLI
/// prints it as one line and exits with its kind's status (64 usage, 1 failure).
public struct HarnessError: Error, CustomStringConvertible, Equatable {
    /// A usage error is a command line that cannot be run as given: a flag value that is
    /// malformed or out of range, or flags that conflict. Everything else (files, MPI,
    /// devices, memory, results that fail validation) is a failure.
    public enum Kind: Sendable, Equatable { case failure, usage }

    public let message: String
    public let kind: Kind
    public init(_ message: String, kind: Kind = .failure) { self.message = message; self.kind = kind }
    public var description: String { message }

    /// A usage error: the command line itself is wrong.
    public static func usage(_ message: String) -> HarnessError { HarnessError(message, kind: .usage) }
}

/// Megatron's `divide`: a / b, or an error naming both numbers when b does not divide a.
public func divide(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    guard b > 0, a % b == 0 else {
        throw HarnessError("\(what()): \(a) is not divisible by \(b)")
    }
    return a / b
}

/// Positive-size check with a message naming the field.
public func requirePositive(_ value: Int, _ name: String) throws {
    guard value > 0 else { throw HarnessError("\(name) must be positive, got \(value)") }
}
