import Foundation
import MLRABench
import MLRACore
import MLRATestSupport
import XCTest

/// The sweep-spec parser fuzzed like the safetensors reader and layer configs in
/// MLRACoreTests/FuzzTests: seeds `spec*.json` from Tests/Fuzz/corpus, the shared
/// JSON mutator, a fixed RNG seed per file and a fixed iteration count.
final class SweepSpecFuzzTests: XCTestCase {
    static let iterationsPerSeed = 3000

    func testSpecLoaderSurvivesMutants() throws {
        let seeds = try FuzzCorpus.seeds(suffix: ".json", prefix: "spec")
        XCTAssertGreaterThanOrEqual(seeds.count, 3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("spec-fuzz-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var stats = FuzzStats()
        var configs = 0
        for (name, seed) in seeds {
            _ = try SweepSpec.load(path: FuzzCorpus.folder.appendingPathComponent(name).path).configurations(worldSize: 4)   // seeds are valid
            var rng = SplitMix64(seed: fnv1a(name))
            for _ in 0..<Self.iterationsPerSeed {
                _ = FileManager.default.createFile(atPath: path, contents: Mutator.json(seed, rng: &rng))
                stats.record {
                    let spec = try SweepSpec.load(path: path)
                    for world in [1, 3, 4] {
                        let all = try spec.configurations(worldSize: world)
                        configs += all.count
                        for c in all.prefix(200) { _ = c.skipReason(); _ = c.key; _ = c.replicas }
                    }
                }
            }
        }
        print("fuzz sweep spec: \(stats) (\(configs) configurations expanded)")
        stats.assertSound()
    }

    /// Issue 17's checks, by property: a key the format does not define, in the root, the
    /// defaults or any grid, and a key given twice are always refused, naming the key;
    /// many grids of large lists are refused by their total before anything is expanded.
    func testUnknownAndDuplicateKeysAndHugeTotalsAreAlwaysRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("spec-fuzz-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var stats = FuzzStats(), sawUnknown = 0, sawTwice = 0
        let unknown = ["variant", "context", "tps", "Threads", "", "grid", "kv-ranks", "cold cache"]
        let known = SweepSpec.Grid.keys
        for (name, seed) in try FuzzCorpus.seeds(suffix: ".json", prefix: "spec") {
            var rng = SplitMix64(seed: fnv1a("keys " + name))
            for i in 0..<400 {
                let key = i % 2 == 0 ? unknown.randomElement(using: &rng)! : known.randomElement(using: &rng)!
                let mutant = Mutator.insertingMember(seed, key: key, value: "[1]", rng: &rng)
                _ = FileManager.default.createFile(atPath: path, contents: mutant)
                stats.record {
                    do {
                        // A known key may be new in that object (then it is accepted, if well typed).
                        let spec = try SweepSpec.load(path: path)
                        XCTAssertTrue(known.contains(key), "\(name): unknown key '\(key)' was accepted: \(String(decoding: mutant, as: UTF8.self))")
                        _ = try spec.configurations(worldSize: 4)
                    } catch let e as HarnessError {
                        if e.message.contains("is unknown") { sawUnknown += 1 }
                        if e.message.contains("appears twice") { sawTwice += 1 }
                        throw e
                    }
                }
            }
        }
        XCTAssertGreaterThan(sawUnknown, 0)
        XCTAssertGreaterThan(sawTwice, 0)
        // 2 to 400 grids whose lists multiply beyond the total cap: refused fast, counted not expanded.
        var rng = SplitMix64(seed: 17)
        for _ in 0..<50 {
            var g = SweepSpec.Grid()
            g.variants = [.mla, .gqa]; g.contexts = Array(1...Int.random(in: 50...500, using: &rng)); g.batch = Array(1...200)
            let count = Int.random(in: 2...400, using: &rng)
            guard Double(count * 2 * g.contexts!.count * 200) > Double(SweepSpec.maxConfigurations) else { continue }
            let start = Date()
            stats.record { _ = try SweepSpec(grids: Array(repeating: g, count: count)).configurations(worldSize: 1, maxThreads: 1) }
            XCTAssertLessThan(Date().timeIntervalSince(start), 0.5)
        }
        print("fuzz spec keys and totals: \(stats)")
        stats.assertSound()
    }
}
