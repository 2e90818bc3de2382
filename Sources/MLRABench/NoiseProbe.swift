import CFFTW
import Foundation
import MLRACore
import MLRAParallel

/// The Fixed Time Quantum noise probe (FTQ, Sottile and Minnich 2004): count the units of
/// a fixed piece of work done in each of many consecutive quanta of fixed length. A quiet
/// core does the same work in every quantum; timer ticks, daemons, other tenants and
/// frequency changes take work away from the quanta they hit, and the spectrum of the
/// series shows how often they come.
///
/// The quanta start at fixed times (t0 + i·quantum), not after each other, so time lost
/// to an interruption is charged to the quantum it fell in, as in FTQ (FWQ would fix the
/// work and time it instead).
public enum NoiseProbe {
    public struct Settings: Equatable, Sendable {
        /// Length of one quantum, seconds (Nyquist frequency 1 / (2 · quantum)).
        public var quantum: Double
        /// Total probing time, seconds (frequency resolution 1 / budget).
        public var budget: Double
        public init(quantum: Double = 100e-6, budget: Double = 3) { self.quantum = quantum; self.budget = budget }

        public var quanta: Int { Int((budget / quantum).rounded()) }

        public func validate() throws {
            guard quantum.isFinite, quantum >= 10e-6, quantum <= 1 else {
                throw HarnessError("the noise probe's quantum must lie in 10 µs ... 1 s, got \(quantum * 1e6) µs")
            }
            guard budget.isFinite, budget >= 0.1, budget <= 600 else {
                throw HarnessError("the noise probe's budget must lie in 0.1 ... 600 s, got \(budget) s")
            }
            guard quanta >= 64 else {
                throw HarnessError("the noise probe needs at least 64 quanta for a spectrum; \(budget) s of \(quantum * 1e6) µs quanta give \(quanta)")
            }
        }
    }

    /// One periodic component of the series: its frequency and its amplitude as a fraction
    /// of the mean work per quantum (a sinusoid a·sin(2πft) of work lost and regained).
    public struct Peak: Codable, Equatable, Sendable {
        public let hz: Double
        public let amplitude: Double
    }

    /// What the probe found on one core.
    public struct Summary: Codable, Equatable, Sendable {
        public let quantumSeconds: Double
        public let quanta: Int
        /// Work units per quantum: mean, and the undisturbed level (95th percentile: a high
        /// percentile rather than the maximum, so that one fast quantum does not set it).
        public let meanWork: Double
        public let fullWork: Double
        /// Standard deviation / mean of the work per quantum.
        public let cv: Double
        /// Fraction of quanta that did less than 90 % of the undisturbed work.
        public let lostFraction: Double
        /// The strongest periodic components, strongest first.
        public let peaks: [Peak]
        /// The amplitude spectrum on log-spaced bins (each bin's largest amplitude, so that
        /// a narrow peak survives the binning), for the report's figure.
        public let spectrumHz: [Double]
        public let spectrumAmplitude: [Double]

        public var topHz: Double? { peaks.first?.hz }
        /// The series' frequency resolution (one FFT bin).
        public var resolutionHz: Double { 1 / (Double(quanta) * quantumSeconds) }
    }

    /// The work per quantum for `settings.quanta` consecutive quanta on the calling thread.
    public static func measure(_ settings: Settings) -> [Double] {
        let n = settings.quanta
        var work = [Double](repeating: 0, count: n)
        var sink: UInt64 = 0x9E37_79B9_7F4A_7C15
        let t0 = monotonicSeconds()
        for i in 0..<n {
            let end = t0 + Double(i + 1) * settings.quantum
            var count = 0
            while monotonicSeconds() < end {
                sink = workUnit(sink)
                count += 1
            }
            work[i] = Double(count)
        }
        blackHole(sink)
        return work
    }

    /// Summary statistics, the strongest peaks and the binned spectrum of a work series.
    public static func summarize(_ work: [Double], quantum: Double, peakCount: Int = 3, spectrumBins: Int = 120) -> Summary {
        let n = work.count
        precondition(n >= 4, "a spectrum needs at least 4 quanta")
        let mean = work.reduce(0, +) / Double(n)
        let variance = work.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, n - 1))
        let sorted = work.sorted()
        let full = sorted[min(n - 1, Int((0.95 * Double(n - 1)).rounded()))]
        let lost = Double(work.filter { $0 < 0.9 * full }.count) / Double(n)
        let amplitude = amplitudeSpectrum(work).map { mean > 0 ? $0 / mean : 0 }
        let binHz = 1 / (Double(n) * quantum)  // amplitude[k - 1] is frequency k · binHz
        let found = peaks(amplitude, count: peakCount).map { Peak(hz: Double($0 + 1) * binHz, amplitude: amplitude[$0]) }
        let (hz, amp) = logBinned(amplitude, binHz: binHz, bins: spectrumBins)
        return Summary(quantumSeconds: quantum, quanta: n, meanWork: mean, fullWork: full,
                       cv: mean > 0 ? variance.squareRoot() / mean : 0, lostFraction: lost, peaks: found,
                       spectrumHz: hz, spectrumAmplitude: amp)
    }

    /// One-sided amplitude spectrum of x − mean(x): element k − 1 is 2·|X_k| / N, the
    /// amplitude of the sinusoid at frequency k / (N · quantum), for k = 1 ... N/2
    /// (FFTW's real-to-complex transform, double precision).
    public static func amplitudeSpectrum(_ x: [Double]) -> [Double] {
        let n = x.count
        let mean = x.reduce(0, +) / Double(n)
        let input = fftw_alloc_real(n)!, output = fftw_alloc_complex(n / 2 + 1)!
        defer { fftw_free(input); fftw_free(output) }
        for i in 0..<n { input[i] = x[i] - mean }
        let plan = fftw_plan_dft_r2c_1d(Int32(n), input, output, UInt32(FFTW_ESTIMATE))
        fftw_execute(plan)
        fftw_destroy_plan(plan)
        return (1...(n / 2)).map { k in
            let re = output[k].0, im = output[k].1
            // The Nyquist bin of an even-length series has no mirror image: count it once.
            return (k == n - k ? 1.0 : 2.0) * (re * re + im * im).squareRoot() / Double(n)
        }
    }

    /// Indices of the `count` largest local maxima of `spectrum`, largest first, each at
    /// least three bins from a larger one (a peak's shoulders are not peaks).
    static func peaks(_ spectrum: [Double], count: Int) -> [Int] {
        let m = spectrum.count
        var candidates = [Int]()
        for k in 0..<m {
            let left = k > 0 ? spectrum[k - 1] : -Double.infinity, right = k + 1 < m ? spectrum[k + 1] : -Double.infinity
            if spectrum[k] > 0, spectrum[k] >= left, spectrum[k] >= right { candidates.append(k) }
        }
        var chosen = [Int]()
        for k in candidates.sorted(by: { spectrum[$0] > spectrum[$1] }) where chosen.count < count {
            if chosen.allSatisfy({ abs($0 - k) >= 3 }) { chosen.append(k) }
        }
        return chosen
    }

    /// The spectrum on `bins` log-spaced bins from the first to the last frequency; each
    /// non-empty bin gives its geometric centre and its largest amplitude.
    static func logBinned(_ spectrum: [Double], binHz: Double, bins: Int) -> (hz: [Double], amplitude: [Double]) {
        let m = spectrum.count
        guard m > 1 else { return (spectrum.indices.map { Double($0 + 1) * binHz }, spectrum) }
        let lo = log(binHz), hi = log(Double(m) * binHz)
        var best = [Double](repeating: -1, count: bins)
        for k in 0..<m {
            let f = log(Double(k + 1) * binHz)
            let b = min(bins - 1, Int((f - lo) / (hi - lo) * Double(bins)))
            best[b] = max(best[b], spectrum[k])
        }
        var hz = [Double](), amp = [Double]()
        for b in 0..<bins where best[b] >= 0 {
            hz.append(exp(lo + (Double(b) + 0.5) / Double(bins) * (hi - lo)))
            amp.append(best[b])
        }
        return (hz, amp)
    }

    static func monotonicSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// A fixed piece of dependent integer arithmetic, not inlined so that each unit is the
    /// same work. With the clock read after it, a unit took about 30 ns on the 2-core VM
    /// (3200 per 100 µs quantum): the count per quantum resolves a fraction of a percent.
    @inline(never)
    static func workUnit(_ x: UInt64) -> UInt64 {
        var v = x
        for _ in 0..<64 { v = v &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
        return v
    }

    @inline(never)
    static func blackHole(_ x: UInt64) { if x == 0x5EED { print("") } }
}

/// The probe run on every rank of a job at once (so that ranks sharing a node disturb each
/// other as they would in a measurement), gathered: what `mlra noise --out` writes and what
/// the sweep records. Keys are snake_case, like the CSV columns.
public struct NoiseReport: Codable, Sendable {
    public struct Rank: Codable, Sendable {
        public let rank: Int
        public let host: String
        public let nodeRank: Int
        public let summary: NoiseProbe.Summary
    }
    public var schema = 1
    public let harness: String
    public let gitRev: String
    public let started: String
    public let quantumSeconds: Double
    public let budgetSeconds: Double
    public let ranks: [Rank]

    /// The rank whose work varied most (the one a row's noise columns describe).
    public var worst: Rank? { ranks.max { $0.summary.cv < $1.summary.cv } }

    public var hosts: [String] { ranks.reduce(into: [String]()) { if !$0.contains($1.host) { $0.append($1.host) } } }

    /// Runs the probe on every rank of `world` together (a collective: call it on every rank).
    public static func measure(world: Communicator, settings: NoiseProbe.Settings) throws -> NoiseReport {
        try settings.validate()
        let started = ISO8601DateFormatter().string(from: Date())
        let nodeRank = NodeTopology(world).localRank
        world.barrier()
        let work = NoiseProbe.measure(settings)
        let summary = NoiseProbe.summarize(work, quantum: settings.quantum)
        let mine = Rank(rank: world.rank, host: MPI.processorName, nodeRank: nodeRank, summary: summary)
        let encoded = String(decoding: try coder.encoder.encode(mine), as: UTF8.self)
        let ranks = try world.allGather(encoded).map { try coder.decoder.decode(Rank.self, from: Data($0.utf8)) }
        return NoiseReport(harness: HarnessVersion.string, gitRev: world.broadcast(world.rank == 0 ? gitRevision() : ""),
                           started: world.broadcast(started), quantumSeconds: settings.quantum, budgetSeconds: settings.budget,
                           ranks: ranks)
    }

    public func json() throws -> Data { try Self.coder.encoder.encode(self) }

    public static func load(path: String) throws -> NoiseReport {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        do { return try coder.decoder.decode(NoiseReport.self, from: data) } catch {
            throw HarnessError("\(path) is not a noise probe report (mlra noise --out): \(error)")
        }
    }

    static let coder: (encoder: JSONEncoder, decoder: JSONDecoder) = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return (e, d)
    }()

    /// Fixed-width lines: one per rank, then the worst of them.
    public func tableLines() -> [String] {
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        var lines = [pad("rank", 6) + pad("host", 21) + pad("work/quantum", 14) + pad("CV", 9) + pad("lost>10%", 10)
                     + "strongest periodic components (Hz: amplitude, % of mean work)"]
        for r in ranks {
            let s = r.summary
            let peaks = s.peaks.map { String(format: "%.1f: %.2f%%", $0.hz, 100 * $0.amplitude) }.joined(separator: ", ")
            lines.append(pad("\(r.rank)", 6) + pad(r.host, 21) + pad(String(format: "%.1f", s.meanWork), 14)
                         + pad(String(format: "%.4f", s.cv), 9) + pad(String(format: "%.2f%%", 100 * s.lostFraction), 10) + peaks)
        }
        if let worst {
            lines.append("worst: rank \(worst.rank) on \(worst.host), CV " + String(format: "%.4f", worst.summary.cv) + ", "
                         + String(format: "%.2f", 100 * worst.summary.lostFraction) + "% of quanta lost more than 10% of their work")
        }
        return lines
    }
}
