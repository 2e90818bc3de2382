#if canImport(Glibc)
import Glibc
#endif
import CBLAS
import Foundation
import MLRACore

/// This machine's roofline, measured: streaming bandwidth (read-only and STREAM
/// triad) on arrays far larger than the last-level cache, and peak f32 FLOP/s
/// from OpenBLAS sgemm on large matrices and from a SIMD multiply-add loop.
/// Every figure is the best of several repetitions (STREAM's convention).
public struct Calibration: Codable, Sendable, Equatable {
    public var threads: Int
    /// Read-only streaming bandwidth (a sum over one array), GB/s (10⁹ bytes/s).
    public var readGBs: Double
    /// STREAM triad a = b + s·c, counting 12 bytes per f32 element (no write-allocate), GB/s.
    public var triadGBs: Double
    /// OpenBLAS sgemm on large square matrices, GFLOP/s.
    public var sgemmGFlops: Double
    /// Multiply-add loop with independent accumulators at the widest vector width this
    /// CPU runs (`fmaWidth`), GFLOP/s: the hardware's f32 peak, which OpenBLAS's
    /// sgemm may not reach (e.g. its Haswell kernels on an AVX-512 CPU).
    public var fmaGFlops: Double
    /// The FMA loop's instructions: avx512 (zmm), avx2 (ymm), or swift-simd (neither found).
    public var fmaWidth: String
    /// The OpenBLAS kernel family in use (e.g. Haswell, SkylakeX; set with OPENBLAS_CORETYPE).
    public var blasCore: String
    /// Last-level cache size found, and the bytes of each streamed array.
    public var llcBytes: Int
    public var arrayBytes: Int

    /// The file's keys are the CSV columns' names without their `calib_` prefix (`read_gbs`
    /// for `calib_read_gbs`; `blas_core` as bench's column). Files written with the old
    /// names (`readGBs`, …: `renamedKeys`) still load.
    enum CodingKeys: String, CodingKey {
        case threads, readGBs = "read_gbs", triadGBs = "triad_gbs", sgemmGFlops = "sgemm_gflops", fmaGFlops = "fma_gflops"
        case fmaWidth = "fma_width", blasCore = "blas_core", llcBytes = "llc_bytes", arrayBytes = "array_bytes"
    }

    /// The roofline's bandwidth: the kernel only reads the cache, so the read-only figure.
    public var bandwidthGBs: Double { readGBs }
    /// The roofline's compute peak: the best f32 rate measured.
    public var peakGFlops: Double { max(sgemmGFlops, fmaGFlops) }

    /// Seconds the roofline allows for `bytes` streamed and `flops` computed: max of the two limits.
    public func rooflineSeconds(bytes: Double, flops: Double) -> Double {
        max(bytes / (bandwidthGBs * 1e9), flops / (peakGFlops * 1e9))
    }

    public init(threads: Int, readGBs: Double, triadGBs: Double, sgemmGFlops: Double, fmaGFlops: Double,
                fmaWidth: String, blasCore: String, llcBytes: Int, arrayBytes: Int) {
        self.threads = threads; self.readGBs = readGBs; self.triadGBs = triadGBs
        self.sgemmGFlops = sgemmGFlops; self.fmaGFlops = fmaGFlops; self.fmaWidth = fmaWidth
        self.blasCore = blasCore; self.llcBytes = llcBytes; self.arrayBytes = arrayBytes
    }

    /// Measures with `threads` threads. Full mode: arrays of max(256 MB, 8 × LLC),
    /// sgemm n = 2048, 5 repetitions (a few seconds). Quick mode: arrays of 4 × LLC,
    /// sgemm n = 1024, 3 repetitions (about 1–2 s).
    public static func measure(threads: Int, quick: Bool = false) throws -> Calibration {
        let llc = lastLevelCacheBytes()
        let arrayBytes = quick ? 4 * llc : max(256 << 20, 8 * llc)
        let reps = quick ? 3 : 5
        let stream = StreamTask(elements: arrayBytes / 4, threads: threads)
        let pool = try WorkerPool(parts: threads)
        pool.run(stream.with(.initialise))
        let read = best(reps) { pool.run(stream.with(.read)) }
        let triad = best(reps) { pool.run(stream.with(.triad)) }
        let bytes = Double(stream.elements * 4)
        stream.release()

        let n = quick ? 1024 : 2048
        let sgemm = sgemmGFlops(n: n, threads: threads, reps: reps)

        let fma = FMATask(iterations: quick ? 4_000_000 : 20_000_000, threads: threads)
        let fmaSeconds = best(reps) { pool.run(fma) }

        return Calibration(threads: threads, readGBs: bytes / read / 1e9, triadGBs: 3 * bytes / triad / 1e9,
                           sgemmGFlops: sgemm, fmaGFlops: fma.flops / fmaSeconds / 1e9,
                           fmaWidth: FMAWidth.widest?.rawValue ?? Self.swiftSIMDWidth,
                           blasCore: String(cString: openblas_get_corename()), llcBytes: llc, arrayBytes: Int(bytes))
    }

    /// Reads a calibration written by `mlra calibrate --format json`.
    public static func load(path: String) throws -> Calibration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HarnessError("\(path): cannot read calibration file")
        }
        // Strict like every input: no key twice, counts written as integers; a file from an
        // older version (no fmaWidth) or any other damage asks for a fresh calibration.
        let cal = try StrictJSON.decode(Calibration.self, from: data, path: path, kind: "calibration",
                                        check: { try RenamedKeys.check($0, path: path, kind: "calibration", Self.renamedKeys) },
                                        integerKeys: ["threads", "llc_bytes", "array_bytes", "llcBytes", "arrayBytes"],
                                        renames: Self.renamedKeys,
                                        hint: " (re-run 'mlra calibrate --format json')")
        try cal.validate(path: path)
        return cal
    }

    /// Largest last-level cache a file may state (1 TiB, far beyond any CPU's): kernel
    /// workloads size their cold-cache sets as 4 × llcBytes, so an absurd value must
    /// be refused here, before it becomes an Int overflow or a multi-terabyte allocation.
    public static let maxLLCBytes = 1 << 40
    /// `fmaWidth` when the CPU has neither AVX-512 nor AVX2 and the Swift SIMD loop ran.
    static let swiftSIMDWidth = "swift-simd"

    /// A calibration file is input like any other: every figure the roofline divides
    /// by or sizes buffers from must be a positive, finite, plausible number.
    func validate(path: String) throws {
        func fail(_ key: String, _ value: String, _ rule: String) -> HarnessError {
            HarnessError("\(path): calibration '\(key)' is \(value); it must be \(rule)")
        }
        guard threads >= 1, threads <= 1 << 16 else { throw fail("threads", "\(threads)", "in 1...65536") }
        for (key, v) in [("read_gbs", readGBs), ("triad_gbs", triadGBs), ("sgemm_gflops", sgemmGFlops), ("fma_gflops", fmaGFlops)]
        where !(v.isFinite && v > 0) {
            throw fail(key, "\(v)", "a positive finite number")
        }
        guard llcBytes >= 1, llcBytes <= Self.maxLLCBytes else { throw fail("llc_bytes", "\(llcBytes)", "in 1...\(Self.maxLLCBytes)") }
        guard arrayBytes >= 1, arrayBytes <= 1 << 50 else { throw fail("array_bytes", "\(arrayBytes)", "in 1...\(1 << 50)") }
        let widths = [FMAWidth.avx512, .avx2].map(\.rawValue) + [Self.swiftSIMDWidth]
        guard widths.contains(fmaWidth) else {
            throw fail("fma_width", "'\(SafeTensorsFile.printable(fmaWidth))'", "one of \(widths.joined(separator: ", "))")
        }
    }

    /// Keys renamed to the CSV's names (`calib_` + the key), with the names files written before keep.
    public static let renamedKeys: KeyRenames = [
        "read_gbs": "readGBs", "triad_gbs": "triadGBs", "sgemm_gflops": "sgemmGFlops", "fma_gflops": "fmaGFlops",
        "fma_width": "fmaWidth", "blas_core": "blasCore", "llc_bytes": "llcBytes", "array_bytes": "arrayBytes",
    ]

    /// Size of the last-level cache (sysfs index3, else index2), 32 MiB if unknown.
    public static func lastLevelCacheBytes() -> Int {
        for index in [3, 2] {
            let path = "/sys/devices/system/cpu/cpu0/cache/index\(index)/size"
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
                let unit = t.last.map { ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String($0)] ?? 1 } ?? 1
                if let v = Int(t.filter(\.isNumber)) { return v * unit }
            }
        }
        return 32 << 20
    }

    private static func sgemmGFlops(n: Int, threads: Int, reps: Int) -> Double {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 1e-3; b[i] = Float(i % 5) * 1e-3 }
        BLAS.setThreads(threads)
        defer { BLAS.setThreads(1) }
        BLAS.gemmNT(a, b, c, m: n, n: n, k: n)   // warm-up: OpenBLAS buffers, page faults
        let seconds = best(reps) { BLAS.gemmNT(a, b, c, m: n, n: n, k: n) }
        return 2 * Double(n) * Double(n) * Double(n) / seconds / 1e9
    }
}

/// Best (smallest) wall time of `reps` runs of `body`, seconds.
func best(_ reps: Int, _ body: () -> Void) -> Double {
    var t = Double.infinity
    for _ in 0..<reps {
        let start = monotonicSeconds()
        body()
        t = min(t, monotonicSeconds() - start)
    }
    return t
}

/// CLOCK_MONOTONIC in seconds.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// STREAM-style kernels over three arrays, each thread on its contiguous slice.
private final class StreamTask: PoolTask {
    enum Kind { case initialise, read, triad }
    let elements: Int, threads: Int
    private let a, b, c: UnsafeMutablePointer<Float>
    private var kind = Kind.read
    /// Written by the read kernel so the compiler cannot drop the loads.
    private let sinks: UnsafeMutablePointer<Float>

    init(elements: Int, threads: Int) {
        self.elements = elements / 64 * 64; self.threads = threads
        a = UnsafeMutableRawPointer.allocate(byteCount: self.elements * 4, alignment: 64).assumingMemoryBound(to: Float.self)
        b = UnsafeMutableRawPointer.allocate(byteCount: self.elements * 4, alignment: 64).assumingMemoryBound(to: Float.self)
        c = UnsafeMutableRawPointer.allocate(byteCount: self.elements * 4, alignment: 64).assumingMemoryBound(to: Float.self)
        sinks = .allocate(capacity: threads * 16)
    }

    func with(_ k: Kind) -> StreamTask { kind = k; return self }
    func release() { a.deallocate(); b.deallocate(); c.deallocate(); sinks.deallocate() }

    func work(part: Int) {
        // Slices in whole 64-element chunks; each thread first-touches its own slice.
        let chunks = elements / 64
        let lo = chunks * part / threads * 64, hi = chunks * (part + 1) / threads * 64
        switch kind {
        case .initialise:
            for i in lo..<hi { a[i] = 1; b[i] = 2; c[i] = Float(i & 7) }
        case .read:
            var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
            var i = lo
            while i < hi {
                let p = UnsafeRawPointer(b + i)
                s0 += p.load(as: SIMD16<Float>.self)
                s1 += p.load(fromByteOffset: 64, as: SIMD16<Float>.self)
                s2 += p.load(fromByteOffset: 128, as: SIMD16<Float>.self)
                s3 += p.load(fromByteOffset: 192, as: SIMD16<Float>.self)
                i += 64
            }
            sinks[part * 16] = (s0 + s1 + s2 + s3).sum()
        case .triad:
            let s: Float = 3
            var i = lo
            while i < hi {
                let pb = UnsafeRawPointer(b + i), pc = UnsafeRawPointer(c + i), pa = UnsafeMutableRawPointer(a + i)
                for k in 0..<4 {
                    let v = pb.load(fromByteOffset: 64 * k, as: SIMD16<Float>.self)
                        + s * pc.load(fromByteOffset: 64 * k, as: SIMD16<Float>.self)
                    pa.storeBytes(of: v, toByteOffset: 64 * k, as: SIMD16<Float>.self)
                }
                i += 64
            }
        }
    }
}

/// Independent multiply-add chains in registers, on every thread: the CKernels loop at
/// the widest width the CPU runs, else a Swift SIMD loop (8 accumulators × 16 lanes).
private final class FMATask: PoolTask {
    let iterations: Int
    private let width = FMAWidth.widest
    private let done: UnsafeMutablePointer<Double>
    private let sinks = UnsafeMutablePointer<Float>.allocate(capacity: 64 * 16)
    /// FLOPs of the last run, all threads.
    var flops: Double { (0..<threads).reduce(0) { $0 + done[$1 * 8] } }
    private let threads: Int

    init(iterations: Int, threads: Int) {
        self.iterations = iterations; self.threads = threads
        done = .allocate(capacity: threads * 8)   // a line per thread
        done.initialize(repeating: 0, count: threads * 8)
    }
    deinit { sinks.deallocate(); done.deallocate() }

    func work(part: Int) {
        if let width {
            done[part * 8] = width.loop(iterations: iterations)
            return
        }
        let m = SIMD16<Float>(repeating: 0.999999), add = SIMD16<Float>(repeating: 1e-7)
        var a0 = SIMD16<Float>(repeating: 1), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
        var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7
        for _ in 0..<iterations {
            a0 = a0 * m + add; a1 = a1 * m + add; a2 = a2 * m + add; a3 = a3 * m + add
            a4 = a4 * m + add; a5 = a5 * m + add; a6 = a6 * m + add; a7 = a7 * m + add
        }
        sinks[min(part, 63) * 16] = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7).sum()
        done[part * 8] = Double(iterations) * 8 * 16 * 2
    }
}

