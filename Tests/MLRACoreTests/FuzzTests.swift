import Foundation
import MLRACore
import XCTest

/// Property test over the file parsers (issue 7): valid seed files from
/// `Tests/Fuzz/corpus` are mutated at random with a fixed-seed RNG (bit flips,
/// byte insert/delete, truncation, header-length corruption, JSON token swaps,
/// huge/negative numbers, nested garbage). Every mutant must either parse or be
/// rejected with a `HarnessError` whose message is one non-empty line. A Swift
/// trap (overflow, index out of range, force unwrap) kills the test process, so
/// "no crash" is checked by the process surviving. Budget: a fixed iteration
/// count per seed file (a few seconds in release). The sweep-spec parser, which
/// lives in MLRABench, is fuzzed with the same mutator in MLRABenchTests/SweepSpecFuzzTests.
final class FuzzTests: XCTestCase {
    /// Mutants per seed file (fixed, so CI time is bounded: about 1 s and 8 s in release here).
    static let safetensorsIterationsPerSeed = 12_000
    static let configIterationsPerSeed = 3000

    static var corpus: URL { FuzzCorpus.folder }
    static func seeds(_ suffix: String) throws -> [(String, Data)] { try FuzzCorpus.seeds(suffix: suffix) }

    /// Every seed must be valid: otherwise the mutants test nothing.
    func testSeedCorpusIsValid() throws {
        let st = try Self.seeds(".safetensors")
        XCTAssertGreaterThanOrEqual(st.count, 4)
        var dtypes = Set<StorageDType>(), sawEmpty = false, sawMeta = false
        for (name, data) in st {
            let f = try SafeTensorsFile(bytes: data, path: name)
            for (t, e) in f.entries { _ = try f.tensor(t); dtypes.insert(e.dtype); sawEmpty = sawEmpty || e.shape.contains(0) }
            sawMeta = sawMeta || !f.metadata.isEmpty
        }
        XCTAssertEqual(dtypes, Set(StorageDType.allCases))
        XCTAssertTrue(sawEmpty && sawMeta)
        for (name, _) in try Self.seeds(".json") where name.hasPrefix("config") {
            _ = try AttentionConfig.load(path: Self.corpus.appendingPathComponent(name).path).layout()
        }
    }

    func testSafeTensorsReaderSurvivesMutants() throws {
        var stats = FuzzStats()
        for (name, seed) in try Self.seeds(".safetensors") {
            var rng = SplitMix64(seed: fnv1a(name))
            for i in 0..<Self.safetensorsIterationsPerSeed {
                let mutant = Mutator.safetensors(seed, rng: &rng)
                stats.record {
                    let f = try SafeTensorsFile(bytes: mutant, path: "\(name)#\(i)")
                    for t in f.entries.keys.sorted() {
                        let x = try f.tensor(t)
                        XCTAssertEqual(x.count, f.entries[t]!.shape.reduce(1, *))
                    }
                }
            }
        }
        print("fuzz safetensors: \(stats)")
        stats.assertSound()
    }

    func testConfigLoaderSurvivesMutants() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.json").path
        var stats = FuzzStats()
        for (name, seed) in try Self.seeds(".json") where name.hasPrefix("config") {
            var rng = SplitMix64(seed: fnv1a(name))
            for _ in 0..<Self.configIterationsPerSeed {
                let mutant = Mutator.json(seed, rng: &rng)
                _ = FileManager.default.createFile(atPath: path, contents: mutant)
                stats.record {
                    let config = try AttentionConfig.load(path: path)
                    let layout = try config.layout()
                    // What the commands do next with a loaded layout: sizes, plans, model.
                    _ = layout.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }
                    for tp in [1, 2, 3, 4, 8] {
                        guard let shards = try? layout.shards(tp: tp) else { continue }
                        for s in shards { _ = layout.cacheWidth(units: s.units.count); _ = layout.weightElements(for: s) }
                    }
                    if config.nLayer != nil, let model = try? ModelLayout(config: config) {
                        _ = model.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) }
                    }
                }
            }
        }
        print("fuzz layer config: \(stats)")
        stats.assertSound()
    }

    /// Issue 17's checks, by property: a header naming a tensor twice (the copy as is or
    /// mutated) is always refused; a config given one of its keys twice is refused; huge
    /// sizes in any config key end in an error, never an overflow trap.
    func testDuplicatesAndOverflowAreAlwaysRefused() throws {
        var stats = FuzzStats()
        for (name, seed) in try Self.seeds(".safetensors") {
            var rng = SplitMix64(seed: fnv1a("duplicate " + name))
            for i in 0..<500 {
                guard let mutant = Mutator.duplicateEntry(seed, rng: &rng) else { continue }
                stats.record {
                    _ = try SafeTensorsFile(bytes: mutant, path: "\(name)#dup\(i)")
                    XCTFail("\(name)#dup\(i): a header naming a tensor twice was accepted")
                }
            }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.json").path
        for (name, seed) in try Self.seeds(".json") where name.hasPrefix("config") {
            var rng = SplitMix64(seed: fnv1a("keys " + name))
            let keys = ((try JSONSerialization.jsonObject(with: seed)) as? [String: Any] ?? [:]).keys.sorted()
            for key in keys {
                _ = FileManager.default.createFile(atPath: path, contents: Mutator.insertingMember(seed, key: key, value: "1", rootOnly: true, rng: &rng))
                stats.record {
                    _ = try AttentionConfig.load(path: path)
                    XCTFail("\(name): key '\(key)' given twice was accepted")
                }
            }
            for _ in 0..<300 {   // every size key huge at once: each product must be checked, not trap
                var text = String(decoding: seed, as: UTF8.self)
                for key in keys where key != "variant" {
                    let huge = Mutator.interestingNumbers.filter { Int($0) != nil && Int($0)! > 1 << 20 }.randomElement(using: &rng)!
                    text = text.replacingOccurrences(of: #""\#(key)": "#, with: #""\#(key)": \#(huge), "_\#(key)": "#)
                }
                _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
                stats.record { _ = try AttentionConfig.load(path: path).layout() }
            }
        }
        print("fuzz duplicates and overflow: \(stats)")
        XCTAssertEqual(stats.accepted, 0, "every mutant carries a duplicate or an oversized value")
        stats.assertSound()
    }

    /// Hand-written nasty cases the random mutator is unlikely to hit.
    func testTargetedSafeTensorsCases() throws {
        func header(_ json: String, length: UInt64? = nil, data: Int = 0) -> Data {
            var d = Data()
            withUnsafeBytes(of: (length ?? UInt64(json.utf8.count)).littleEndian) { d.append(contentsOf: $0) }
            d.append(Data(json.utf8)); d.append(Data(repeating: 0, count: data))
            return d
        }
        let cases: [(Data, String)] = [
            (Data(), "shorter than the 8-byte header length"),
            (header("{}", length: UInt64.max), "exceeds the limit"),
            (header("{}", length: 1 << 63), "exceeds the limit"),
            (header("{}", length: 99_999_999), "runs past the end"),
            (header(#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#, data: 8), "dtype 'F64'"),
            (header(#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: 4), "malformed shape"),
            (header(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: 4), "malformed shape"),
            (header(#"{"x":{"dtype":"F32","shape":[3037000500,3037000500],"data_offsets":[0,4]}}"#, data: 4), "too many"),
            (header(#"{"x":{"dtype":"F32","shape":[9000000000000000,1000],"data_offsets":[0,4]}}"#, data: 4), "too many"),
            (header(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: 4), "outside"),
            (header(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: 4), "outside"),
            (header(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,1e300]}}"#, data: 4), "malformed data_offsets"),
            (header(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: 4), "needs 8 bytes"),
            (header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8), "overlap"),
            (header(#"{"a\nb":{"dtype":"F32","shape":[2]}}"#), "malformed data_offsets"),
            (header(#"{"x":{"dtype":"F\n32","shape":[1],"data_offsets":[0,4]}}"#, data: 4), "dtype"),
            (header(#"{"__metadata__":{"k\n":1}}"#), "not a string"),
            (header(String(repeating: "[", count: 100_000)), "not JSON"),
            (header(String(repeating: "{\"a\":", count: 5000) + "1" + String(repeating: "}", count: 5000)), "not a valid safetensors file"),
            (header("[1,2]"), "not a JSON object"),
            (header("{\"x\": 1}\u{0}"), "valid"),
        ]
        for (data, fragment) in cases {
            do {
                let f = try SafeTensorsFile(bytes: data, path: "case")
                for t in f.entries.keys { _ = try f.tensor(t) }
                XCTFail("accepted: \(String(decoding: data.dropFirst(8).prefix(80), as: UTF8.self))")
            } catch let e as HarnessError {
                XCTAssertTrue(e.message.contains(fragment), "\(e.message) lacks \(fragment)")
                XCTAssertFalse(e.message.contains("\n"), e.message)
            }
        }
    }
}
