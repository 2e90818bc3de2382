import Foundation

/// Refuses work whose predicted memory would not fit, before anything is allocated.
public enum MemoryBudget {
    /// Fraction of MemAvailable a run may plan to use (the rest is for the OS, MPI and other ranks' noise).
    public static let usableFraction = 0.85

    /// MemAvailable from /proc/meminfo, or physical memory where it cannot be read.
    public static func availableBytes() -> Int {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = Int(line.split(separator: " ").dropFirst().first ?? "") {
            return kb * 1024
        }
        return Int(ProcessInfo.processInfo.physicalMemory)
    }

    /// The reason `bytesPerRank` × `ranks` cannot fit, or nil when it fits. `ranks`: the
    /// job's ranks on this node (under MPI, NodeTopology.localSize, whatever the launcher).
    public static func shortfall(bytesPerRank: Int, ranks: Int, available: Int = availableBytes()) -> String? {
        let need = Double(bytesPerRank) * Double(ranks)
        guard need > usableFraction * Double(available) else { return nil }
        return String(format: "needs %.2f GiB on this node (%.2f GiB per rank × %d rank%@), but only %.2f GiB are available",
                      need / 1_073_741_824, Double(bytesPerRank) / 1_073_741_824, ranks, ranks == 1 ? "" : "s",
                      Double(available) / 1_073_741_824)
    }

    /// The reason `ranks` ranks of `footprint` cannot fit, with what the rank would hold, or nil.
    public static func shortfall(_ footprint: MemoryFootprint, ranks: Int, available: Int = availableBytes()) -> String? {
        shortfall(bytesPerRank: footprint.total, ranks: ranks, available: available).map { "\($0) (per rank: \(footprint.breakdown))" }
    }

    /// Throws the shortfall as an error naming `what`.
    public static func check(bytesPerRank: Int, ranks: Int, what: String) throws {
        if let s = shortfall(bytesPerRank: bytesPerRank, ranks: ranks) { throw HarnessError("\(what) \(s)") }
    }

    /// Throws the shortfall of `ranks` ranks of `footprint` as an error naming `what`.
    public static func check(_ footprint: MemoryFootprint, ranks: Int, what: String) throws {
        if let s = shortfall(footprint, ranks: ranks) { throw HarnessError("\(what) \(s)") }
    }
}
