import Foundation
import XCTest

/// One flag name per quantity across the subcommands, as their `--help` shows them: not
/// `--context` in one and `--ctx` in another. A sweep grid flag takes a comma list under
/// the plural of the single-value name (`--contexts`, `--kv-dtypes`).
final class FlagNameTests: XCTestCase {
    /// Spellings one quantity is known under (in this harness or in the tools its users
    /// come from); at most one of each set may appear across all subcommands.
    let synonyms: [String: Set<String>] = [
        "file to write": ["out", "output", "output-file", "outfile", "out-file"],
        "file to read": ["input", "in", "input-file", "infile"],
        "context length": ["context", "ctx", "seq-len", "seqlen", "context-len", "context-length", "length", "len", "cache-len"],
        "cache dtype": ["kv-dtype", "dtype", "cache-dtype", "kv-cache-dtype"],
        "kv_lora_rank": ["kv-rank", "kv-lora-rank", "latent-rank", "kv-latent-rank"],
        "q_lora_rank": ["q-rank", "q-lora-rank", "q-latent-rank"],
        "query heads": ["heads", "n-head", "num-heads", "n-heads", "num-attention-heads"],
        "kv heads": ["kv-heads", "n-kv-head", "num-kv-heads", "n-kv-heads", "num-key-value-heads"],
        "head width": ["head-dim", "head-size", "qk-nope-head-dim"],
        "rope width": ["rope-dim", "qk-rope-head-dim", "rope-head-dim"],
        "model width": ["n-embd", "hidden-size", "d-model", "embd"],
        "layers": ["n-layer", "layers", "num-layers", "n-layers", "num-hidden-layers"],
        "TP degree": ["tp", "tp-degree", "tensor-parallel", "tp-size"],
        "batch": ["batch", "batch-size", "bs"],
        "threads": ["threads", "nthreads", "num-threads", "thread"],
        "timed steps": ["steps", "timed-steps", "iterations", "iters"],
        "warm-up steps": ["warmup", "warmup-steps", "warm-up"],
        "calibration file": ["calibration", "calib", "calibration-file"],
        "GPU calibration file": ["gpu-calibration", "gpu-calib", "cuda-calibration"],
        "cold cache": ["cold-cache", "cold", "cold-caches", "rotate-caches"],
        "noise probe seconds": ["noise-budget", "budget", "probe-budget"],
        "seed": ["seed", "weights-seed"],
        "output format": ["format", "output-format", "fmt"],
        "device": ["device", "backend"],
        "product math": ["math", "precision", "compute-dtype", "math-mode", "matmul-precision"],
    ]
    /// Flags that share a spelling with a listed quantity but are another quantity.
    let otherQuantities: Set<String> = [
        "weights --dtype",     // the dtype the weights are stored in, not the cache's
    ]

    /// `--name` spellings in one subcommand's help (options and the flags its text names).
    func flags(_ sub: String) throws -> [String] {
        let r = try CLI.run([sub, "--help"], timeout: 60)
        XCTAssertEqual(r.status, 0, "\(sub) --help: \(r.stderr)")
        let regex = try NSRegularExpression(pattern: "--([a-z][a-z0-9-]*)")
        let text = r.stdout
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range(at: 1), in: text)!]) }
    }

    /// A comma-list flag is its single-value name plus "s": one quantity, one name.
    func singular(_ name: String) -> String { name.hasSuffix("s") ? String(name.dropLast()) : name }

    func testEveryQuantityHasOneFlagNameAcrossSubcommands() throws {
        var used = [String: Set<String>]()   // singular spelling → "sub --flag" where it appears
        for sub in MLRASubcommands.all {
            for f in Set(try flags(sub)) where !otherQuantities.contains("\(sub) --\(f)") {
                used[singular(f), default: []].insert("\(sub) --\(f)")
            }
        }
        XCTAssertGreaterThan(used.count, 40, "the help texts were not read")
        for (quantity, spellings) in synonyms {
            let found = Set(spellings.map(singular)).filter { used[$0] != nil }
            XCTAssertLessThanOrEqual(found.count, 1, "\(quantity) has \(found.count) flag names: "
                                     + found.sorted().map { used[$0]!.sorted().joined(separator: ", ") }.joined(separator: " / "))
        }
        // The renamed spellings are gone from the help.
        for old in ["output", "dtypes", "budget"] { XCTAssertNil(used[singular(old)], "--\(old) is shown: \(used[singular(old)] ?? [])") }
    }

    /// The walks here and in ExitStatusTests cover every subcommand `mlra --help` lists.
    func testTheWalkCoversEverySubcommand() throws {
        let r = try CLI.run(["--help"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let section = r.stdout.components(separatedBy: "SUBCOMMANDS:").last ?? ""
        // "  name    abstract": two spaces, the name, a gap (continuation lines start with more spaces).
        let regex = try NSRegularExpression(pattern: "^  ([a-z]+)  ", options: [.anchorsMatchLines])
        let listed = regex.matches(in: section, range: NSRange(section.startIndex..., in: section))
            .map { String(section[Range($0.range(at: 1), in: section)!]) }
        XCTAssertEqual(Set(listed), Set(MLRASubcommands.all), r.stdout)
    }

    /// The old spellings still run (hidden), with one warning naming the new one.
    func testOldSpellingsStillRunAndSayTheNewName() throws {
        let dir = try TempDir()
        let config = dir.write("c.json", #"{"variant": "mla", "n_embd": 32, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8}"#)
        let w = dir.path("w.safetensors")
        let r = try CLI.run(["weights", "--config", config, "--output", w], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "mlra: warning: --output is deprecated; use --out\n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: w))
        let both = try CLI.run(["weights", "--config", config, "--output", w, "--out", w], timeout: 60)
        XCTAssertEqual(both.status, 64, both.stderr)
        XCTAssertTrue(both.stderr.contains("mlra: error: give --out or its old spelling --output, not both"), both.stderr)
        let noise = try CLI.run(["noise", "--budget", "0"], timeout: 60)
        XCTAssertEqual(noise.status, 64, noise.stderr)
        XCTAssertTrue(noise.stderr.hasPrefix("mlra: warning: --budget is deprecated; use --noise-budget\n"), noise.stderr)
    }

    /// A yes/no setting is one flag pair in every subcommand: `--cold-cache/--no-cold-cache`
    /// in the sweep as in bench; the sweep's old `--cold-cache true|false` still runs, with a warning.
    func testColdCacheIsOneFlagPairAndTheOldValueFormStillRuns() throws {
        for sub in ["sweep", "bench"] {
            let help = try CLI.run([sub, "--help"], timeout: 60).stdout
            XCTAssertTrue(help.contains("--cold-cache/--no-cold-cache"), "\(sub): \(help)")
        }
        func printed(_ args: [String]) throws -> (spec: String, stderr: String) {
            let r = try CLI.run(["sweep", "--preset", "quick", "--print-spec"] + args, timeout: 60)
            XCTAssertEqual(r.status, 0, r.stderr)
            return (r.stdout, r.stderr)
        }
        let off = try printed(["--no-cold-cache"]), on = try printed(["--cold-cache"])
        XCTAssertTrue(off.spec.contains(#""cold_cache" : false"#), off.spec)
        XCTAssertTrue(on.spec.contains(#""cold_cache" : true"#), on.spec)
        XCTAssertEqual(off.stderr, ""); XCTAssertEqual(on.stderr, "")
        for (old, new) in [(["--cold-cache", "false"], off), (["--cold-cache=false"], off), (["--cold-cache", "true"], on)] {
            let r = try printed(old)
            XCTAssertEqual(r.spec, new.spec, "\(old)")
            let flag = old.joined(separator: " ").hasSuffix("true") ? "--cold-cache" : "--no-cold-cache"
            let value = old.joined(separator: " ").hasSuffix("true") ? "true" : "false"
            XCTAssertEqual(r.stderr, "mlra: warning: --cold-cache \(value) is deprecated; use \(flag)\n")
        }
    }

    /// The spec file's key for the cache dtypes is the flag's, `kv_dtypes`; "dtypes" still reads, with a warning.
    func testTheSpecKeyDtypesIsNowKvDtypesAndTheOldOneStillReads() throws {
        let dir = try TempDir()
        let new = dir.write("new.json", #"{"defaults": {"kv_dtypes": ["f16"]}, "grids": [{"variants": ["mla"]}]}"#)
        let old = dir.write("old.json", #"{"defaults": {}, "grids": [{"variants": ["mla"], "dtypes": ["f16"]}]}"#)
        let a = try CLI.run(["sweep", "--spec", new, "--print-spec"], timeout: 60)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stderr, "")
        XCTAssertTrue(a.stdout.contains("\"kv_dtypes\"") && !a.stdout.contains("\"dtypes\""), a.stdout)
        let b = try CLI.run(["sweep", "--spec", old, "--print-spec"], timeout: 60)
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertEqual(b.stderr, "mlra: warning: \(old): spec key 'grids.0.dtypes' is deprecated; use 'kv_dtypes'\n")
        XCTAssertTrue(b.stdout.contains(#""kv_dtypes" : ["#) && b.stdout.contains("\"f16\""), b.stdout)
        let both = dir.write("both.json", #"{"defaults": {}, "grids": [{"dtypes": ["f16"], "kv_dtypes": ["bf16"]}]}"#)
        let c = try CLI.run(["sweep", "--spec", both, "--print-spec"], timeout: 60)
        assertCleanError(c, contains: "mlra: error: \(both): spec object 'grids.0' gives both 'kv_dtypes' and its old name 'dtypes'; keep one")
        XCTAssertEqual(c.status, 1)
    }

    /// The GPU calibration file is --gpu-calibration in bench as in the sweep (bench read it
    /// from --calibration with --device cuda; that still runs, with a warning).
    func testTheGPUCalibrationFlagIsOneName() throws {
        let cpuOnly = try CLI.run(["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--gpu-calibration", "g.json"], timeout: 60)
        assertCleanError(cpuOnly, contains: "mlra: error: --gpu-calibration applies to --device cuda")
        XCTAssertEqual(cpuOnly.status, 64)
        let both = try CLI.run(["bench", "--variant", "mla", "--context", "64", "--heads", "4", "--device", "cuda",
                                "--calibration", "c.json", "--gpu-calibration", "g.json"], timeout: 60)
        assertCleanError(both, contains: "mlra: error: give --gpu-calibration or its old spelling --calibration with --device cuda, not both")
        XCTAssertEqual(both.status, 64)
    }
}
