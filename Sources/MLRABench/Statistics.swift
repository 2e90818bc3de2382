/// Summary of timing samples (seconds, or any unit): median, p10, p90, min, max.
///
/// Percentiles interpolate linearly between order statistics (NumPy's default,
/// "type 7"): with the n samples sorted as x₀ ≤ … ≤ x_{n−1}, the p-quantile sits
/// at rank r = p·(n − 1) and equals x_⌊r⌋ + (r − ⌊r⌋)·(x_⌈r⌉ − x_⌊r⌋). So the
/// median of an even count is the mean of the two middle samples, and one
/// sample is every percentile of itself. Samples must be finite and non-empty.
public struct SampleStats: Equatable, Sendable, Codable {
    public let count: Int
    public let median: Double, p10: Double, p90: Double
    public let min: Double, max: Double
    public let mean: Double

    public init(_ samples: [Double]) {
        precondition(!samples.isEmpty, "SampleStats needs at least one sample")
        precondition(samples.allSatisfy(\.isFinite), "SampleStats samples must be finite")
        let sorted = samples.sorted()
        count = sorted.count
        median = Self.percentile(sorted, 0.5)
        p10 = Self.percentile(sorted, 0.1)
        p90 = Self.percentile(sorted, 0.9)
        min = sorted.first!
        max = sorted.last!
        mean = sorted.reduce(0, +) / Double(sorted.count)
    }

    /// The p-quantile (0 ≤ p ≤ 1) of already sorted samples, linearly interpolated.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        precondition(!sorted.isEmpty && p >= 0 && p <= 1)
        let rank = p * Double(sorted.count - 1)
        let lo = Int(rank.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (rank - Double(lo)) * (sorted[hi] - sorted[lo])
    }
}
