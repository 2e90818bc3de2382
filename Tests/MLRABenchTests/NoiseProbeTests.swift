import Foundation
@testable import MLRABench
import XCTest

/// The noise probe's analysis against series whose spectra are known by hand, and the probe
/// itself on this machine (no timing threshold: only that what it reports is well formed).
final class NoiseProbeTests: XCTestCase {
    /// 3 s of 100 µs quanta, 1000 units of work each, with a 2 ms hiccup every 10 ms that
    /// leaves 200: a 100 Hz pulse train of duty 0.2.
    func hiccupSeries() -> [Double] {
        (0..<30_000).map { i in i % 100 < 20 ? 200 : 1000 }
    }

    func testAHiccupEveryTenMillisecondsIsOneHundredHertz() {
        let s = NoiseProbe.summarize(hiccupSeries(), quantum: 100e-6)
        XCTAssertEqual(s.quanta, 30_000)
        XCTAssertEqual(s.resolutionHz, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.topHz ?? 0, 100, accuracy: s.resolutionHz)
        // The harmonics come next, in the order of |sin(π k · 0.2)| / k: 200, 300 Hz.
        XCTAssertEqual(s.peaks.map { ($0.hz / 100).rounded() }, [1, 2, 3])
        // Mean 840; the fundamental of a pulse train of height 800 and duty d is
        // (2/π)·800·sin(π d) = 299.3 units, 0.3563 of the mean.
        XCTAssertEqual(s.meanWork, 840, accuracy: 1e-9)
        XCTAssertEqual(s.peaks[0].amplitude, 2 / Double.pi * 800 * sin(Double.pi * 0.2) / 840, accuracy: 1e-3)
        // 20 % of the quanta lost 80 % of their work; standard deviation 320 (n − 1 weighting).
        XCTAssertEqual(s.lostFraction, 0.2, accuracy: 1e-12)
        XCTAssertEqual(s.fullWork, 1000)
        XCTAssertEqual(s.cv, (0.8 * 160 * 160 + 0.2 * 640 * 640).squareRoot() * (30_000.0 / 29_999).squareRoot() / 840, accuracy: 1e-9)
    }

    func testASinusoidsAmplitudeIsRecovered() {
        // 2 s of 1 ms quanta: 1000 + 50 sin(2π · 37 Hz · t), a whole number of periods.
        let n = 2000
        let x = (0..<n).map { 1000 + 50 * sin(2 * Double.pi * 37 * Double($0) * 1e-3) }
        let a = NoiseProbe.amplitudeSpectrum(x)
        XCTAssertEqual(a.count, n / 2)
        XCTAssertEqual(a[37 * 2 - 1], 50, accuracy: 1e-9)  // bin k = f · N · quantum = 74
        XCTAssertEqual(a.enumerated().filter { $0.offset != 73 }.map(\.element).max() ?? 1, 0, accuracy: 1e-9)
        let s = NoiseProbe.summarize(x, quantum: 1e-3)
        XCTAssertEqual(s.topHz ?? 0, 37, accuracy: 1e-9)
        XCTAssertEqual(s.peaks[0].amplitude, 0.05, accuracy: 1e-12)
    }

    func testTheBinnedSpectrumKeepsPeaksAndSpansTheRange() {
        let s = NoiseProbe.summarize(hiccupSeries(), quantum: 100e-6, spectrumBins: 50)
        XCTAssertEqual(s.spectrumHz.count, s.spectrumAmplitude.count)
        XCTAssertLessThanOrEqual(s.spectrumHz.count, 50)
        XCTAssertEqual(s.spectrumHz, s.spectrumHz.sorted())
        XCTAssertGreaterThan(s.spectrumHz.first ?? 0, s.resolutionHz * 0.99)
        XCTAssertLessThan(s.spectrumHz.last ?? .infinity, 5000 * 1.01)
        XCTAssertEqual(s.spectrumAmplitude.max() ?? 0, s.peaks[0].amplitude, accuracy: 1e-12)
    }

    func testTheProbeOnThisMachineIsWellFormed() throws {
        let settings = NoiseProbe.Settings(quantum: 100e-6, budget: 0.2)
        try settings.validate()
        let work = NoiseProbe.measure(settings)
        XCTAssertEqual(work.count, 2000)
        XCTAssertGreaterThan(work.max() ?? 0, 0)
        let s = NoiseProbe.summarize(work, quantum: settings.quantum)
        XCTAssertTrue(s.cv.isFinite && s.cv >= 0)
        XCTAssertTrue((0...1).contains(s.lostFraction))
        XCTAssertEqual(NoiseProbe.amplitudeSpectrum(work).count, 1000)
        XCTAssertEqual(s.spectrumHz.count, s.spectrumAmplitude.count)
        XCTAssertEqual(s.peaks.count, 3)
    }

    func testSettingsOutOfRangeAreRefused() {
        for (q, b) in [(1e-6, 3.0), (2.0, 3.0), (100e-6, 0.01), (100e-6, 1000), (0.01, 0.5), (.nan, 3)] {
            XCTAssertThrowsError(try NoiseProbe.Settings(quantum: q, budget: b).validate(), "\(q) \(b)")
        }
        XCTAssertNoThrow(try NoiseProbe.Settings().validate())
    }
}

/// FFTW missing at build time: the system-library target's header stops the build with a
/// line naming the package (checked by preprocessing it with no system include path).
final class FFTWBuildErrorTests: XCTestCase {
    func testAMissingFFTWHeaderIsAnErrorNamingThePackage() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-fftw-\(UUID())")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["cc", "-E", "-nostdinc", "-I", empty.path, root.appendingPathComponent("Sources/CFFTW/shim.h").path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.contains("FFTW 3 is missing: install libfftw3-dev"), text)
    }
}
