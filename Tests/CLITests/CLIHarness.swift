import Foundation
import MLRABench
import MLRACore
@_exported import MLRATestSupport
import XCTest

/// Runs the `mlra` executable built beside the test bundle, with a timeout so a
/// hang fails the test instead of hanging CI.
struct CLIResult {
    let status: Int32
    let stdout: String
    let stderr: String
    let timedOut: Bool
}

enum CLI {
    static var productsDirectory: URL {
        // The test bundle (a file on Linux) sits in the build products folder next to `mlra`.
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    static var mlra: String {
        // MLRA_EXECUTABLE runs the tests against another build (e.g. the commit before
        // a fix, to see a new test fail there).
        if let other = ProcessInfo.processInfo.environment["MLRA_EXECUTABLE"], !other.isEmpty { return other }
        let candidate = productsDirectory.appendingPathComponent("mlra").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        // `swift test` on Linux runs the bundle from the products folder; fall back to a search upward.
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        for _ in 0..<3 { dir = dir.deletingLastPathComponent() }
        for config in ["release", "debug"] {
            let p = dir.appendingPathComponent(".build/\(config)/mlra").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return candidate
    }

    /// Runs `executable args` and waits at most `timeout` seconds (then kills it).
    static func run(_ args: [String], executable: String = mlra, timeout: TimeInterval = 120,
                    environment: [String: String] = [:]) throws -> CLIResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        // Output goes to files, not pipes, so a chatty child never blocks on a full pipe.
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-out-\(UUID())")
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-err-\(UUID())")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline { timedOut = true; p.terminate(); usleep(500_000); kill(p.processIdentifier, SIGKILL); break }
            usleep(20_000)
        }
        p.waitUntilExit()
        let outData = (try? Data(contentsOf: outURL)) ?? Data()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        return CLIResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self), timedOut: timedOut)
    }

    /// mpirun with the flags this machine needs (oversubscription, root). MLRA_MPIEXEC names
    /// another launcher, given `-n N` only: MPICH's mpiexec.mpich (Hydra oversubscribes and
    /// runs as root without flags), for a build with MLRA_MPI=mpich (`make test-mpich`).
    static func mpirun(_ n: Int, _ args: [String], timeout: TimeInterval = 300) throws -> CLIResult {
        if let other = ProcessInfo.processInfo.environment["MLRA_MPIEXEC"], !other.isEmpty {
            return try run(["-n", "\(n)", mlra] + args, executable: other, timeout: timeout)
        }
        return try run(["-n", "\(n)", "--oversubscribe", "--bind-to", "none", mlra] + args,
                       executable: "/usr/bin/mpirun", timeout: timeout)
    }
}

/// A fixed calibration file (`--calibration`), so sweeps in tests skip measuring the
/// machine and their rows carry known roofs (read 10 GB/s, sgemm 50 GFLOP/s).
func calibration(_ dir: TempDir) throws -> String {
    let c = Calibration(threads: 1, readGBs: 10, triadGBs: 9, sgemmGFlops: 50, fmaGFlops: 20, fmaWidth: "avx2", blasCore: "test",
                        llcBytes: 1 << 20, arrayBytes: 4 << 20)
    let path = dir.path("cal.json")
    try JSONEncoder().encode(c).write(to: URL(fileURLWithPath: path))
    return path
}

/// A temporary folder removed when the test ends.
final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) -> String {
        _ = FileManager.default.createFile(atPath: path(name), contents: Data(text.utf8))
        return path(name)
    }
}

/// Asserts a clean failure: non-zero exit, no trap or backtrace, exactly one
/// `mlra: error:` line containing `fragment`.
func assertCleanError(_ r: CLIResult, contains fragment: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "command hung", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, "expected failure; stderr: \(r.stderr)", file: file, line: line)
    XCTAssertNotEqual(r.status, 134, "trapped (SIGABRT)", file: file, line: line)
    XCTAssertNotEqual(r.status, 132, "trapped (SIGILL)", file: file, line: line)
    let errorLines = r.stderr.split(separator: "\n").filter { $0.contains("error") || $0.contains("Error") }
    XCTAssertEqual(Set(errorLines).count, 1, "expected one error line, got: \(r.stderr)", file: file, line: line)
    XCTAssertTrue(r.stderr.contains(fragment), "stderr lacks '\(fragment)': \(r.stderr)", file: file, line: line)
    XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), r.stderr, file: file, line: line)
}
