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
}
