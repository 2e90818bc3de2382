import Foundation
import MLRABench
import XCTest

/// Issue 17, SIGTERM grace: the Slurm scripts get SIGTERM 120 s before the time
/// limit (--signal=B:TERM@120). They used to pass it to mpirun, which forwards it
/// and SIGKILLs the ranks about 2 s later, so a configuration longer than that was
/// lost. Now they signal the ranks, which finish the configuration in progress,
/// write its row and stop. Run here without Slurm: bash runs the script with the
/// variables Slurm would set, and the test plays Slurm's SIGTERM.
final class SlurmGraceTests: XCTestCase {
    var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    /// Two configurations of several seconds each (10-20 s here, where the old
    /// scripts lost the first one 2 s after the signal).
    func long(_ cal: String) -> String {
        "--variants mla --contexts 8192,8193 --tp 1 --heads 4 --kv-ranks 64 --head-dim 16 --rope-dim 8 --n-embd 64 --q-rank 32 "
            + "--scopes kernel --batch 2 --kv-dtypes bf16 --warmup 1 --steps 30000 --threads 1 --calibration \(cal)"
    }

    func signalDuringTheFirstConfiguration(script: String, out: String, environment: [String: String]) throws -> (Int32, String, Double) {
        let dir = try TempDir()
        let log = dir.path("log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root.appendingPathComponent(script).path]
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = p.standardOutput
        p.standardInput = FileHandle.nullDevice   // as under sbatch
        try p.run()
        // The ranks are running (mpirun has children) and rank 0 has opened the CSV.
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out) && Date() < deadline && p.isRunning { usleep(50_000) }
        sleep(2)   // well inside the first configuration, and past mpirun's 2 s
        XCTAssertTrue(p.isRunning)
        XCTAssertEqual(AppendOnlyCSV.readRows(path: out).count, 0, "the first configuration must still be running")
        kill(p.processIdentifier, SIGTERM)
        let t0 = Date()
        while p.isRunning && Date().timeIntervalSince(t0) < 100 { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let seconds = Date().timeIntervalSince(t0)
        print("\(script): exit \(p.terminationStatus) \(String(format: "%.1f", seconds)) s after SIGTERM")
        return (p.terminationStatus, text, seconds)
    }

    func environment(_ dir: TempDir) throws -> [String: String] {
        ["MLRA_BIN": CLI.mlra, "MLRA_OUT_DIR": dir.path("results"), "MLRA_SAMPLES": "0", "SLURM_NTASKS": "2",
         "MLRA_SWEEP_ARGS": long(try calibration(dir)), "SLURM_SUBMIT_DIR": root.path]
    }

    func testSlurmSweepFinishesTheConfigurationInProgress() throws {
        let dir = try TempDir()
        var env = try environment(dir)
        env["MLRA_SWEEP_NAME"] = "grace"
        let out = dir.path("results/grace.csv")
        let (status, log, seconds) = try signalDuringTheFirstConfiguration(script: "jobs/slurm_sweep.sbatch", out: out, environment: env)
        XCTAssertEqual(status, 143, log)
        XCTAssertLessThan(seconds, 60, "the script must end when the ranks have stopped, not when its grace is up")
        XCTAssertEqual(AppendOnlyCSV.readRows(path: out).count, 2, "the configuration in progress is finished (2 TP groups), the next not begun: \(log)")
        XCTAssertTrue(log.contains("interrupted"), log)
    }

    func testSlurmArrayTaskFinishesTheConfigurationInProgress() throws {
        let dir = try TempDir()
        var env = try environment(dir)
        env["MLRA_SWEEP_NAME"] = "agrace"
        for (k, v) in ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "0",
                       "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_JOB_ID": "1"] { env[k] = v }
        let out = dir.path("results/agrace.task0.csv")
        let (status, log, seconds) = try signalDuringTheFirstConfiguration(script: "jobs/slurm_array.sbatch", out: out, environment: env)
        XCTAssertEqual(status, 143, log)
        XCTAssertLessThan(seconds, 60, log)
        XCTAssertEqual(AppendOnlyCSV.readRows(path: out).count, 2, log)
    }
}
