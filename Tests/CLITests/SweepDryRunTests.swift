import Foundation
import MLRABench
import MLRACore
import XCTest

/// `mlra sweep --dry-run`: the expanded grid with the sweep's skips, the footprint
/// model's memory and the roofline's time, and not one byte of the outputs touched.
final class SweepDryRunTests: XCTestCase {
    /// A small grid: mla and mlra4 at TP 1 and 3 (mlra4's plan refuses 3), at a short
    /// context and at 2^36 tokens (a cache of terabytes: no node has the memory).
    let huge = 1 << 36
    var grid: [String] {
        ["--variants", "mla,mlra4", "--tp", "1,3", "--contexts", "64,\(huge)", "--heads", "4", "--kv-ranks", "64",
         "--head-dim", "16", "--rope-dim", "8", "--n-embd", "64", "--q-rank", "16", "--batch", "2", "--kv-dtypes", "bf16",
         "--warmup", "2", "--steps", "5", "--no-noise-probe"]
    }

    /// Every file under `dir`, by name, with its bytes.
    func snapshot(_ dir: TempDir) throws -> [String: Data] {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.url.path)
        return Dictionary(uniqueKeysWithValues: names.map { ($0, FileManager.default.contents(atPath: dir.path($0)) ?? Data()) })
    }

    /// The listing of --format csv as rows.
    func listing(_ r: CLIResult, _ dir: TempDir) -> [[String: String]] {
        let path = dir.url.deletingLastPathComponent().appendingPathComponent("listing-\(UUID()).csv").path
        FileManager.default.createFile(atPath: path, contents: Data(r.stdout.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return AppendOnlyCSV.readRows(path: path)
    }

    /// Every configuration is listed with the sweep's own skip reason, MemoryFootprint's
    /// prediction and the roofline time computed by hand from the calibration file
    /// (read 10 GB/s, peak max(sgemm 50, FMA 20) = 50 GFLOP/s, LLC 1 MiB).
    func testEveryConfigurationIsListedWithItsSkipMemoryAndTime() throws {
        let dir = try TempDir()
        let cal = try calibration(dir)
        let before = try snapshot(dir)
        let r = try CLI.run(["sweep", "--dry-run", "--format", "csv", "--calibration", cal, "--out", dir.path("s.csv")] + grid)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = listing(r, dir)
        // The same expansion the sweep makes, in its order, judged by the library.
        var flagged = SweepSpec.Grid()
        flagged.variants = [.mla, .mlra4]; flagged.tp = [1, 3]; flagged.contexts = [64, huge]; flagged.heads = [4]
        flagged.kvRanks = [64]; flagged.headDim = 16; flagged.ropeDim = 8; flagged.nEmbd = 64; flagged.qLoraRank = 16
        flagged.batch = [2]; flagged.dtypes = ["bf16"]; flagged.warmup = 2; flagged.steps = 5
        let configs = try SweepSpec(grids: [flagged]).configurations(worldSize: 1)
        XCTAssertEqual(rows.count, configs.count, r.stdout)
        XCTAssertEqual(configs.count, 8)
        for (row, c) in zip(rows, configs) {
            XCTAssertEqual(row["variant"], c.variant.rawValue)
            XCTAssertEqual(row["tp"], "\(c.tp)"); XCTAssertEqual(row["context"], "\(c.context)")
            let footprint = try? c.footprint(backend: .cpu(lastLevelCacheBytes: 1 << 20))
            XCTAssertEqual(row["mem_bytes_per_rank"], footprint.map { "\($0.total)" } ?? "", "\(c.label)")
            if let reason = c.skipReason() {
                XCTAssertEqual(row["status"], "skip: " + reason, c.label)
                XCTAssertEqual(row["predicted_s"], "", c.label)
            } else if c.context == huge {
                XCTAssertTrue(row["status"]!.hasPrefix("skip: needs "), row["status"]!)
                XCTAssertTrue(row["status"]!.contains("GiB are available"), row["status"]!)
            } else {
                XCTAssertEqual(row["status"], "run", c.label)
                // By hand: the busiest rank's cache bytes and kernel FLOPs of one step.
                let cost = try DecodeCost(c.attentionConfig.layout(), tp: c.tp, dtype: .bf16)
                let bytes = Double(cost.kvBytesPerToken * 64 * 2), flops = Double(cost.kernelFlopsPerToken * 64 * 2)
                let expected = max(bytes / 10e9, flops / 50e9) * 7
                XCTAssertEqual(Double(row["predicted_s"]!)!, expected, accuracy: expected * 1e-5, c.label)
            }
        }
        XCTAssertTrue(rows.contains { $0["status"]!.contains("mlra4 cannot run at TP degree 3") }, r.stdout)
        let toRun = configs.filter { $0.skipReason() == nil && $0.context == 64 }.count
        XCTAssertGreaterThan(toRun, 0)
        XCTAssertTrue(r.stderr.contains("# 8 measurements: \(toRun) to run, \(8 - toRun) skipped, 0 already in"), r.stderr)
        XCTAssertEqual(try snapshot(dir), before, "a dry run created or changed a file")
    }

    /// Resuming: the measurements already in --out are listed as such; the CSV, the
    /// stored calibration and everything else beside it stay byte-identical; the stored
    /// calibration is what predicts time. Under mpirun -n 2 only rank 0 prints, and a
    /// layer-scope TP degree that does not divide the world is skipped with its reason.
    func testResumedMeasurementsAreListedAndNoFileIsTouchedUnderMPI() throws {
        let dir = try TempDir()
        let out = dir.path("r.csv")
        let small = ["--variants", "mla", "--heads", "4", "--kv-ranks", "64", "--head-dim", "16", "--rope-dim", "8",
                     "--n-embd", "64", "--q-rank", "16", "--batch", "2", "--contexts", "64", "--warmup", "0", "--steps", "2",
                     "--no-noise-probe"]
        let first = try CLI.mpirun(2, ["sweep", "--out", out, "--samples", dir.path("r.samples.csv"), "--calibration", calibration(dir),
                                       "--tp", "1"] + small)
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = try snapshot(dir)
        XCTAssertNotNil(before["r.csv.calibration.json"])
        let r = try CLI.mpirun(2, ["sweep", "--dry-run", "--out", out, "--tp", "1,4", "--scopes", "kernel,layer"] + small)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.components(separatedBy: "timing_mode").count, 2, "one listing, from rank 0:\n\(r.stdout)")
        XCTAssertTrue(r.stdout.contains("skip: already in \(out)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("skip: TP degree 4 does not divide the world size 2"), r.stdout)
        XCTAssertTrue(r.stdout.contains("# 4 measurements: 2 to run, 1 skipped, 1 already in \(out)"), r.stdout)
        XCTAssertFalse(r.stdout.contains("no calibration"), r.stdout)
        XCTAssertFalse(r.stdout.contains("predicted time: unknown"), r.stdout)
        XCTAssertEqual(try snapshot(dir), before, "a dry run created or changed a file")
    }

    /// Issue 14: layer and model scope count their cold-cache sets in the one prediction.
    /// Against a calibration file's 64 GiB LLC the sets of a small layer or model span
    /// 256 GiB: skipped before allocation with the sets named (as the sweep skips it);
    /// warm, the same configurations run.
    func testColdLayerAndModelScopeAreJudgedWithTheirSets() throws {
        let dir = try TempDir()
        let big = Calibration(threads: 1, readGBs: 10, triadGBs: 9, sgemmGFlops: 50, fmaGFlops: 20, fmaWidth: "avx2", blasCore: "test",
                              llcBytes: 1 << 36, arrayBytes: 4 << 20)
        let cal = dir.path("big-llc.json")
        try JSONEncoder().encode(big).write(to: URL(fileURLWithPath: cal))
        let args = ["sweep", "--dry-run", "--format", "csv", "--calibration", cal, "--out", dir.path("c.csv"), "--variants", "gqa",
                    "--scopes", "layer,model", "--heads", "4", "--head-dim", "16", "--kv-heads", "2", "--n-embd", "64",
                    "--batch", "1", "--contexts", "64", "--warmup", "1", "--steps", "2", "--no-noise-probe"]
        let cold = try CLI.run(args)
        XCTAssertEqual(cold.status, 0, cold.stderr)
        let coldRows = listing(cold, dir)
        XCTAssertEqual(coldRows.map { $0["scope"] }, ["layer", "model"], cold.stdout)
        for row in coldRows {
            XCTAssertTrue(row["status"]!.hasPrefix("skip: needs ") && row["status"]!.contains(" sets) + weights "), row["status"]!)
            XCTAssertGreaterThanOrEqual(Int(row["mem_bytes_per_rank"]!)!, 4 << 36, row["status"]!)
        }
        let warm = try CLI.run(args + ["--cold-cache", "false"])
        XCTAssertEqual(warm.status, 0, warm.stderr)
        XCTAssertEqual(listing(warm, dir).map { $0["status"] }, ["run", "run"], warm.stdout)
    }

    /// Without a calibration the time is unknown, said once with how to get one; an
    /// all-skipped plan still exits 0 (it is a dry run); --format without --dry-run is a usage error.
    func testWithoutCalibrationTimeIsUnknownAndUsageErrors() throws {
        let dir = try TempDir()
        let r = try CLI.run(["sweep", "--dry-run", "--out", dir.path("n.csv")] + grid)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("# predicted time: unknown"), r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "give --calibration FILE").count, 2, r.stdout)
        XCTAssertEqual(try snapshot(dir), [:])
        let skipped = try CLI.run(["sweep", "--dry-run", "--variants", "mlra4", "--tp", "3"] + grid.dropFirst(4))
        XCTAssertEqual(skipped.status, 0, skipped.stderr)
        XCTAssertTrue(skipped.stdout.contains("0 to run"), skipped.stdout)
        let format = try CLI.run(["sweep", "--format", "csv", "--out", dir.path("n.csv")] + grid)
        XCTAssertEqual(format.status, 64, format.stderr)
        XCTAssertTrue(format.stderr.contains("--format applies to --dry-run only"), format.stderr)
        let bad = try CLI.run(["sweep", "--dry-run", "--format", "json"] + grid)
        XCTAssertEqual(bad.status, 64, bad.stderr)
    }
}
