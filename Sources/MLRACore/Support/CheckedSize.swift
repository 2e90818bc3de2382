/// Overflow-checked size arithmetic: the one place where products and sums of
/// sizes that come from input (flags, configs, specs, file headers, calibration
/// files) are formed. Swift traps on `Int` overflow (SIGILL, exit 132, a
/// backtrace and no error line), so every such product goes through here and a
/// value too large becomes one `HarnessError` naming it instead.
public enum CheckedSize {
    /// The product of `factors`, or an error "`what` is too large: a × b × … exceeds 2^63 − 1".
    public static func product(_ factors: [Int], _ what: @autoclosure () -> String) throws -> Int {
        var p = 1
        for f in factors {
            let (q, overflow) = p.multipliedReportingOverflow(by: f)
            guard !overflow else { throw tooLarge(what(), factors.map(String.init).joined(separator: " × ")) }
            p = q
        }
        return p
    }

    /// The sum of `terms`, or an error naming `what` when it exceeds an Int.
    public static func sum(_ terms: [Int], _ what: @autoclosure () -> String) throws -> Int {
        var s = 0
        for t in terms {
            let (u, overflow) = s.addingReportingOverflow(t)
            guard !overflow else { throw tooLarge(what(), terms.map(String.init).joined(separator: " + ")) }
            s = u
        }
        return s
    }

    static func tooLarge(_ what: String, _ expression: String) -> HarnessError {
        HarnessError("\(what) is too large: \(expression) exceeds the largest 64-bit integer (2^63 − 1)")
    }
}
