import Foundation
import MLRABench
import MLRACore
import XCTest

/// Real `mpirun` runs at N = 1, 2, 4 (oversubscribed on this 2-core machine).
final class ParallelCommandTests: XCTestCase {
    /// One layer config per variant, all with 4 heads so that t = 1, 2, 4 are legal,
    /// d_l ≠ d_n where the variant allows it, GQA replicating its 2 KV heads at t = 4.
    static let layers: [(VariantName, String)] = [
        (.mha, #""n_head": 4, "head_dim": 8"#),
        (.mqa, #""n_head": 4, "head_dim": 8"#),
        (.gqa, #""n_head": 4, "head_dim": 8, "group_size": 2"#),
        (.mla, #""n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 20, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8"#),
        (.gla2, #""n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 40, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8"#),
        (.mlra2, #""n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8"#),
        (.mlra4, #""n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 64, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4"#),
    ]
    static let width = 24

    func configJSON(_ v: VariantName, _ body: String, model: Bool = false) -> String {
        let extra = model ? #", "n_layer": 2, "intermediate_size": 36, "vocab_size": 61"# : ""
        return #"{"variant": "\#(v.rawValue)", "n_embd": \#(Self.width), \#(body)\#(extra)}"#
    }

    func stats(_ stdout: String) throws -> [String: Any] {
        let line = try XCTUnwrap(stdout.split(separator: "\n").first { $0.hasPrefix("stats: ") })
        return try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as! [String: Any]
    }

    /// Per-device cache bytes per token as `mlra plan --format csv` reports them.
    func plannedKVBytes(_ v: VariantName, _ body: String, tp: Int) throws -> Int {
        let c = try JSONDecoder().decode(AttentionConfig.self, from: Data(configJSON(v, body).utf8))
        var args = ["plan", "--variants", v.rawValue, "--tp", "\(tp)", "--heads", "\(c.nHead)", "--kv-dtype", "f32", "--format", "csv"]
        if v.isLatent {
            args += ["--head-dim", "\(c.qkNopeHeadDim!)", "--rope-dim", "\(c.qkRopeHeadDim!)", "--kv-rank", "\(c.kvLoraRank!)"]
        } else {
            args += ["--head-dim", "\(c.headDim!)", "--kv-heads", "\(c.nHead / (c.groupSize ?? (v == .mha ? 1 : c.nHead)))"]
        }
        let r = try CLI.run(args)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let column = try XCTUnwrap(lines[0].firstIndex(of: "kv_bytes_per_token"))
        return try XCTUnwrap(Int(lines[1][column]))
    }

    func testForwardUnderMpirunEqualsReferenceAndPlan() throws {
        let dir = try TempDir()
        let tokens = 6, prefill = 2
        let x = Tensor(shape: [tokens, Self.width], data: randomInput(tokens: tokens, width: Self.width, seed: 21))
        try SafeTensorsFile.write(["x": x], to: dir.path("x.safetensors"))
        for (v, body) in Self.layers {
            let config = dir.write("\(v).json", configJSON(v, body))
            let layout = try AttentionConfig.load(path: config).layout()
            let ref = try ReferenceForward.run(layout, weights: SeededWeights(seed: 8), x: x.data.map(Double.init), tokens: tokens)
            for n in [1, 2, 4] {
                let out = dir.path("y-\(v)-\(n).safetensors")
                let r = try CLI.mpirun(n, ["forward", "--config", config, "--seed", "8", "--input", dir.path("x.safetensors"),
                                           "--prefill", "\(prefill)", "--out", out, "--stats"])
                XCTAssertEqual(r.status, 0, "\(v) n=\(n): \(r.stderr)")
                let y = try SafeTensorsFile(path: out).tensor("y", expectedShape: [tokens, Self.width])
                assertClose(y.data, ref, atol: 2e-5, rtol: 2e-4, "\(v) under mpirun -n \(n)")

                // What the ranks allocated equals the plan; communication is exactly the planned all-reduces:
                // one after prefill and one per decode step, each of T·D floats.
                let s = try stats(r.stdout)
                let rowBytes = s["cache_row_bytes"] as! [Int]
                XCTAssertEqual(rowBytes.max(), try plannedKVBytes(v, body, tp: n), "\(v) n=\(n) cache bytes per token")
                let calls = s["allreduce_calls"] as! [Int]
                XCTAssertEqual(calls, [Int](repeating: n > 1 ? 1 + (tokens - prefill) : 0, count: n), "\(v) n=\(n)")
                XCTAssertEqual(s["allreduce_bytes"] as! [Int], [Int](repeating: n > 1 ? tokens * Self.width * 4 : 0, count: n))
                XCTAssertEqual(s["allgather_calls"] as! [Int], [Int](repeating: 0, count: n))
            }
        }
    }

    /// Model scope: logits agree across t = 1, 2, 4 within 1e-4 of their scale; generated ids
    /// agree wherever the top two logits differ by more than that.
    func testGenerateGivesSameLogitsAndIdsAcrossTP() throws {
        let dir = try TempDir()
        let steps = 5
        for (v, body) in Self.layers {
            let config = dir.write("m-\(v).json", configJSON(v, body, model: true))
            var runs = [(ids: [Int], logits: [Float], stats: [String: Any])]()
            for n in [1, 2, 4] {
                let out = dir.path("l-\(v)-\(n).safetensors")
                let r = try CLI.mpirun(n, ["generate", "--config", config, "--seed", "13", "--prompt", "3,1,4,1,5",
                                           "--tokens", "\(steps)", "--logits-out", out, "--stats"])
                XCTAssertEqual(r.status, 0, "\(v) n=\(n): \(r.stderr)")
                let ids = r.stdout.split(separator: "\n")[0].split(separator: ",").compactMap { Int($0) }
                XCTAssertEqual(ids.count, steps)
                runs.append((ids, try SafeTensorsFile(path: out).tensor("logits", expectedShape: [steps, 61]).data, try stats(r.stdout)))
            }
            let base = runs[0]
            let scale = Double(base.logits.map { abs($0) }.max()!)
            let tol = 1e-4 * max(scale, 1)
            for (k, run) in runs.enumerated().dropFirst() {
                assertClose(run.logits, base.logits.map(Double.init), atol: tol, rtol: 0, "\(v) logits t=\([1, 2, 4][k]) vs t=1")
                for s in 0..<steps {
                    let row = base.logits[(s * 61)..<((s + 1) * 61)].sorted(by: >)
                    if Double(row[0] - row[1]) > 2 * tol { XCTAssertEqual(run.ids[s], base.ids[s], "\(v) step \(s)") }
                    else { break }   // a near-tie may diverge; later steps then see other tokens
                }
                // Per forward call (1 prefill + steps−1 decode): 2 all-reduces per layer and one logits gather.
                let n = [1, 2, 4][k]
                XCTAssertEqual(run.stats["allreduce_calls"] as! [Int], [Int](repeating: 2 * 2 * steps, count: n), "\(v) t=\(n)")
                XCTAssertEqual(run.stats["allgather_calls"] as! [Int], [Int](repeating: steps, count: n), "\(v) t=\(n)")
            }
        }
    }

    /// Every row names the MPI library the build linked (MLRA_MPI: Open MPI by default, MPICH
    /// under `make test-mpich`) and where its TP group ran: here one node, this host.
    func testSweepRowsNameTheMPILibraryAndTheNode() throws {
        let dir = try TempDir()
        let out = dir.path("s.csv")
        let r = try CLI.mpirun(2, ["sweep", "--out", out, "--calibration", calibration(dir), "--variants", "mla", "--contexts", "32",
                                   "--heads", "4", "--head-dim", "16", "--rope-dim", "8", "--kv-ranks", "64", "--q-rank", "16",
                                   "--n-embd", "32", "--tp", "1,2", "--scopes", "layer", "--batch", "2", "--warmup", "0", "--steps", "2",
                                   "--isolate", "off", "--quiet"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map { parseCSVLine(String($0)) }
        let header = try XCTUnwrap(lines.first)
        let rows = lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0)) }
        XCTAssertEqual(rows.count, 3, "t = 1: 2 groups, t = 2: 1")
        let library = ProcessInfo.processInfo.environment["MLRA_MPI"] == "mpich" ? "MPICH " : "Open MPI v"
        for row in rows {
            XCTAssertTrue(row["mpi_library"]?.hasPrefix(library) == true, "mpi_library \(row["mpi_library"] ?? "")")
            XCTAssertEqual(row["group_nodes"], "1")
            XCTAssertEqual(row["group_hosts"], row["host"])
        }
    }

    func testIllegalTPStopsEveryRankWithOneLine() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", configJSON(.mlra4, Self.layers[6].1))
        try SafeTensorsFile.write(["x": Tensor(zeros: [2, Self.width])], to: dir.path("x.safetensors"))
        let r = try CLI.mpirun(3, ["forward", "--config", config, "--seed", "1", "--input", dir.path("x.safetensors"),
                                   "--prefill", "1", "--out", dir.path("y.safetensors")], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("mlra: error") }
        XCTAssertEqual(ours, ["mlra: error: mlra4 cannot run at TP degree 3: the degree must be 1, 2, 4, 8, …"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("y.safetensors")))
    }
}
