#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Resident memory of this process from /proc/self/status (Linux), in bytes.
public enum ResidentMemory {
    /// Peak resident set size (VmHWM) since start or the last `resetPeak()`.
    public static var peakBytes: Int? { field("VmHWM:") }
    /// Current resident set size (VmRSS).
    public static var currentBytes: Int? { field("VmRSS:") }

    /// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs, Linux ≥ 4.0),
    /// so that a measurement after calibration does not see the calibration arrays.
    @discardableResult
    public static func resetPeak() -> Bool {
        guard let f = fopen("/proc/self/clear_refs", "w") else { return false }
        defer { fclose(f) }
        return fputs("5", f) >= 0
    }

    private static func field(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            // "VmHWM:     123456 kB"
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }
}
