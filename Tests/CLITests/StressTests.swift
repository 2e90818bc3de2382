import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 17, proof by stress: 50 start/kill/resume cycles of a small sweep, each
/// ended by SIGKILL or SIGTERM at a random moment or by a full file system (a small
/// tmpfs, refilled each time with a random amount of room). Afterwards the sweep is
/// resumed to the end and both files must hold every configuration exactly once,
/// every row with every field, and parse as the schema; every sample belongs to a
/// row, with exactly its timed steps. Seeded, so a failure can be replayed; about
/// 40 s here.
final class StressTests: XCTestCase {
    /// SplitMix64: a fixed seed gives the same faults at the same moments.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// 2 variants × 4 contexts, one rank: 8 configurations, one row each, 3 samples each.
    let grid = ["--variants", "mla,gqa", "--contexts", "64,96,128,160", "--tp", "1", "--heads", "4", "--head-dim", "16",
                "--rope-dim", "8", "--kv-ranks", "64", "--q-rank", "16", "--kv-heads", "2", "--n-embd", "32", "--batch", "1",
                "--warmup", "0", "--steps", "3", "--scopes", "kernel", "--threads", "1", "--quiet",
                // Not what this test is about: the probe's report is one file per run, and fifty of
                // them would not fit in the 32 KiB file system (a sweep that cannot write it stops).
                "--no-noise-probe"]
    let configurations = 8, steps = 3

    func testFiftyKillAndResumeCyclesLoseAndDuplicateNothing() throws {
        let fs = try SmallFileSystem(bytes: 32 << 10)
        let dir = try TempDir()
        let cal = try calibration(dir)
        let out = fs.path("r.csv"), samples = fs.path("s.csv"), filler = fs.path("filler")
        let args = [CLI.mlra, "sweep", "--out", out, "--samples", samples, "--calibration", cal] + grid
        var rng = Random(state: 17)
        var counts = [String: Int]()
        let started = Date()
        for cycle in 0..<50 {
            let fault = ["SIGKILL", "SIGTERM", "full disk"][rng.below(3)]
            if fault == "full disk" { fill(filler, leaving: rng.below(3) * 4096 + rng.below(2000)) } else { unlink(filler) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLI.mlra)
            p.arguments = Array(args.dropFirst())
            p.environment = ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            if fault != "full disk" {
                usleep(UInt32(rng.below(700_000)))
                kill(p.processIdentifier, fault == "SIGKILL" ? SIGKILL : SIGTERM)
            }
            let deadline = Date().addingTimeInterval(30)
            while p.isRunning && Date() < deadline { usleep(10_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); XCTFail("cycle \(cycle): the run did not end") }
            p.waitUntilExit()
            counts[fault, default: 0] += 1
            // Between cycles the files may end in a torn line (SIGKILL mid-write is
            // impossible, a write is one call, but a full disk is not), never in a row
            // that another configuration's row already holds.
            let rows = AppendOnlyCSV.readRows(path: out)
            XCTAssertEqual(Set(rows.map(key)).count, rows.count, "cycle \(cycle) (\(fault)): a configuration twice")
        }
        unlink(filler)
        let last = try CLI.run(Array(args.dropFirst()), timeout: 120)
        XCTAssertEqual(last.status, 0, last.stderr)
        print("stress: 50 cycles (\(counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))) "
              + "and the final run in \(String(format: "%.0f", Date().timeIntervalSince(started))) s")

        // The results parse as the schema: the header is exactly the schema's, the file
        // ends with a whole line, every line has every field, every key field is set.
        let text = try Data(contentsOf: URL(fileURLWithPath: out))
        XCTAssertEqual(text.last, 10, "a whole last line")
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(String(lines.first ?? ""), ResultsSchema.columns.joined(separator: ","))
        for line in lines.dropFirst() { XCTAssertEqual(parseCSVLine(String(line)).count, ResultsSchema.columns.count, "a row lacks fields: \(line.prefix(80))") }
        let rows = AppendOnlyCSV.readRows(path: out)
        XCTAssertEqual(rows.count, configurations, "every configuration")
        XCTAssertEqual(Set(rows.map(key)).count, configurations, "each exactly once")
        for row in rows {
            for column in SweepConfig.keyColumns { XCTAssertFalse(row[column]!.isEmpty, column) }
            XCTAssertEqual(row["validation"], "pass")
            XCTAssertNotNil(Double(row["step_us_median"]!))
        }
        XCTAssertNoThrow(try AppendOnlyCSV.inspect(path: out, columns: ResultsSchema.columns))
        // The samples: exactly `steps` per row, each belonging to one.
        let sampleText = try Data(contentsOf: URL(fileURLWithPath: samples))
        XCTAssertEqual(sampleText.last, 10)
        let sampleRows = AppendOnlyCSV.readRows(path: samples)
        let ids = rows.map { "\($0["run_id"]!) \($0["config_id"]!)" }
        var perRow = [String: Int]()
        for s in sampleRows { perRow["\(s["run_id"]!) \(s["config_id"]!)", default: 0] += 1 }
        XCTAssertEqual(Set(perRow.keys), Set(ids), "every sample belongs to a row, every row has samples")
        XCTAssertTrue(perRow.values.allSatisfy { $0 == steps }, "\(steps) samples per row: \(perRow)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".lock"), "the final run removes its lock")
    }

    func key(_ r: [String: String]) -> String { SweepConfig.key(row: r) + " tp_group=\(r["tp_group"] ?? "")" }

    /// Fills the file system, then frees about `room` bytes (whole pages on tmpfs).
    func fill(_ filler: String, leaving room: Int) {
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x41, count: 4096)
        var size = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            size += n
        }
        _ = ftruncate(fd, off_t(max(0, size - room)))
    }
}
