import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 17, the sweep's outputs: nothing is modified before every input is checked,
/// --out and --samples must be two files, one run at a time per output (a lock that
/// names its holder; a dead holder's lock is taken over), and on a full disk a
/// configuration's samples and rows are committed together or not at all.
final class SweepOutputsTests: XCTestCase {
    /// Two configurations (mla at t = 1, 2), each well under a second.
    let sweep = ["--variants", "mla", "--contexts", "64", "--tp", "1,2", "--heads", "4", "--head-dim", "16", "--rope-dim", "8",
                 "--kv-ranks", "64", "--q-rank", "16", "--n-embd", "32", "--batch", "2", "--warmup", "0", "--steps", "3",
                 "--scopes", "kernel", "--threads", "1"]
    var header: String { ResultsSchema.columns.joined(separator: ",") }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Before: a wrong-schema --samples made the run exit 1 after it had already cut
    /// the torn last line off --out.
    func testARefusedSamplesFileLeavesOutUntouched() throws {
        let dir = try TempDir()
        let out = dir.write("r.csv", header + "\n" + "torn,last,li")
        let samples = dir.write("s.csv", "a,b\n1,2\n")
        let before = try bytes(out)
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--samples", samples, "--calibration", calibration(dir), "--quiet"] + sweep)
        assertCleanError(r, contains: "has another schema")
        XCTAssertEqual(try bytes(out), before, "--out must not be modified by a run that is refused")
        XCTAssertEqual(try String(contentsOfFile: samples, encoding: .utf8), "a,b\n1,2\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.hasSuffix(".lock") }, [],
                       "no lock file is left behind")
    }

    /// A missing --calibration is refused before --out is created.
    func testABadCalibrationCreatesNoOutput() throws {
        let dir = try TempDir()
        let out = dir.path("r.csv")
        let r = try CLI.run(["sweep", "--out", out, "--calibration", dir.path("none.json"), "--quiet"] + sweep)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Before: "--out X --samples X" said "another schema".
    func testOutAndSamplesAsOneFileAreNamedAsSuch() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let x = dir.path("x.csv")
        assertCleanError(try CLI.run(["sweep", "--out", x, "--samples", x, "--calibration", cal] + sweep), contains: "are the same file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: x))
        // An existing file reached by two names (./x.csv, a symlink) is the same file too.
        XCTAssertEqual(try CLI.run(["sweep", "--out", x, "--calibration", cal, "--quiet"] + sweep).status, 0)
        let before = try bytes(x)
        try FileManager.default.createSymbolicLink(atPath: dir.path("link.csv"), withDestinationPath: x)
        assertCleanError(try CLI.mpirun(2, ["sweep", "--out", x, "--samples", dir.path("link.csv"), "--calibration", cal] + sweep),
                         contains: "are the same file")
        XCTAssertEqual(try bytes(x), before)
    }

    /// A run that finds --out locked refuses with one line naming the holder's host
    /// and pid, and touches nothing; under mpirun every rank exits.
    func testALockedOutputIsRefusedNamingTheHolder() throws {
        let dir = try TempDir()
        let out = dir.write("r.csv", header + "\n")
        let fd = open(out + ".lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        let holder = "host testhost pid \(getpid())\n"
        _ = holder.withCString { write(fd, $0, strlen($0)) }
        defer { close(fd) }
        let cal = try calibration(dir)
        for r in [try CLI.run(["sweep", "--out", out, "--calibration", cal] + sweep),
                  try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", cal] + sweep, timeout: 60)] {
            assertCleanError(r, contains: "in use by another run (host testhost pid \(getpid())")
        }
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), header + "\n")
    }

    /// A lock file left by a run that died (no process holds its flock) is taken over,
    /// the run says whose it was, and the lock file is gone when the run ends.
    func testAStaleLockOfADeadRunIsTakenOver() throws {
        let dir = try TempDir()
        let out = dir.path("r.csv")
        _ = dir.write("r.csv.lock", "host ghost pid 999999\n")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir)] + sweep)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("taken over") && r.stderr.contains("host ghost pid 999999"), r.stderr)
        XCTAssertEqual(AppendOnlyCSV.readRows(path: out).count, 1 + 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".lock"))
    }

    /// Before: two sweeps started at once on one --out both measured everything (and
    /// sometimes wrote two headers). Now one runs and the other refuses.
    func testTwoSweepsStartedTogetherOnOneOutput() throws {
        let dir = try TempDir()
        let out = dir.path("r.csv")
        let cal = try calibration(dir)
        let args = ["sweep", "--out", out, "--calibration", cal, "--quiet"] + sweep
        var results = [CLIResult?](repeating: nil, count: 2)
        let guardResults = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? CLI.run(args, timeout: 120)
            guardResults.lock(); results[i] = r; guardResults.unlock()
        }
        let statuses = results.map { $0?.status ?? -1 }.sorted()
        XCTAssertEqual(statuses.first, 0, results.map { $0?.stderr ?? "" }.joined())
        let text = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertEqual(text.components(separatedBy: header).count - 1, 1, "one header")
        XCTAssertEqual(AppendOnlyCSV.readRows(path: out).count, 2, "each configuration once (t = 2 on one rank is one device's share)")
        if statuses.last != 0 {
            XCTAssertTrue(results.contains { $0?.stderr.contains("in use by another run") == true })
        }
    }

    /// --out on a full file system, --samples on a disk with room: the row's append
    /// fails, so the samples just written for it are cut off again. The run ends with
    /// one line saying "no space left on device"; both files hold whole rows, and every
    /// sample belongs to a row in --out.
    func testAFullDiskCommitsSamplesAndRowsTogether() throws {
        let fs = try SmallFileSystem(bytes: 8 << 10)
        let dir = try TempDir()
        let out = fs.path("r.csv"), samples = dir.path("s.csv")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--samples", samples, "--calibration", calibration(dir), "--quiet"]
                                  + sweep + ["--contexts", "64,96,128,160,192,224,256,288"])
        assertCleanError(r, contains: "no space left on device")
        let rows = AppendOnlyCSV.readRows(path: out)
        XCTAssertTrue(try String(contentsOfFile: out, encoding: .utf8).hasSuffix("\n"))
        XCTAssertTrue(try String(contentsOfFile: samples, encoding: .utf8).hasSuffix("\n"))
        XCTAssertLessThan(rows.count, 8 * 3, "the disk must fill before the sweep ends")
        XCTAssertEqual(AppendOnlyCSV.readRows(path: samples).count, rows.count * 3, "3 samples per row, no more")
    }

    /// A rerun into a CSV without --samples, when an earlier run wrote samples for it,
    /// adds rows that file will never hold: one warning line names the file, found from
    /// the record beside the CSV or, for CSVs from before the record, by its usual name.
    func testARerunWithoutSamplesWarnsThatTheSamplesFileNoLongerMatches() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let small = sweep.map { $0 == "1,2" ? "1" : $0 }   // one rank: t = 1 only
        func run(_ extra: [String], contexts: String) throws -> CLIResult {
            var args = small
            args[args.firstIndex(of: "--contexts")! + 1] = contexts
            // A spread warning on this busy machine is not the one under test.
            return try CLI.run(["sweep", "--calibration", cal, "--no-noise-probe", "--quiet", "--spread-warn", "1000"] + extra + args)
        }
        func warnings(_ r: CLIResult) -> [Substring] { r.stderr.split(separator: "\n").filter { $0.hasPrefix("mlra: warning:") } }
        let out = dir.path("r.csv"), samples = dir.path("elsewhere/steps.csv")
        try FileManager.default.createDirectory(atPath: dir.path("elsewhere"), withIntermediateDirectories: true)
        let first = try run(["--out", out, "--samples", samples], contexts: "64")
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(warnings(first), [], first.stderr)

        // Nothing left to measure: the files still match, no warning.
        let resumed = try run(["--out", out], contexts: "64")
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(warnings(resumed), [], resumed.stderr)

        // A new context without --samples: one warning naming the samples file, and still exit 0.
        let more = try run(["--out", out], contexts: "64,128")
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertEqual(warnings(more).count, 1, more.stderr)
        XCTAssertTrue(more.stderr.contains("mlra: warning: \(URL(fileURLWithPath: samples).standardizedFileURL.path) holds the samples"), more.stderr)
        XCTAssertTrue(more.stderr.contains("no longer match"), more.stderr)
        XCTAssertFalse(more.stderr.contains("error"), more.stderr)

        // With --samples again: no warning.
        let together = try run(["--out", out, "--samples", samples], contexts: "64,128,256")
        XCTAssertEqual(together.status, 0, together.stderr)
        XCTAssertEqual(warnings(together), [], together.stderr)

        // A CSV with no record: its samples by the usual name, <stem>.samples.csv.
        let old = dir.path("old.csv"), oldSamples = dir.path("old.samples.csv")
        XCTAssertEqual(try run(["--out", old, "--samples", oldSamples], contexts: "64").status, 0)
        try FileManager.default.removeItem(atPath: SamplesRecord.path(for: old))
        let oldMore = try run(["--out", old], contexts: "64,128")
        XCTAssertEqual(oldMore.status, 0, oldMore.stderr)
        XCTAssertEqual(warnings(oldMore).count, 1, oldMore.stderr)
        XCTAssertTrue(oldMore.stderr.contains(oldSamples), oldMore.stderr)
    }
}
