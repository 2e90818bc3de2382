/// The one error type the harness throws for bad input or impossible requests.
/// Its message is a single plain sentence naming the values involved; the CLI
/// prints it as one line and exits non-zero.
public struct HarnessError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
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
