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
/// lives in MLRABench, is fuzzed with the same mutator in CLITests/BadInputTests.
final class FuzzTests: XCTestCase {
    /// Mutants per seed file (fixed, so CI time is bounded: about 1 s and 8 s in release here).
    static let safetensorsIterationsPerSeed = 12_000
    static let configIterationsPerSeed = 3000

    static var corpus: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus")
    }

    static func seeds(_ suffix: String) throws -> [(String, Data)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: corpus.path).filter { $0.hasSuffix(suffix) }.sorted()
        return try names.map { ($0, try Data(contentsOf: corpus.appendingPathComponent($0))) }
    }

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

/// Counts outcomes and keeps the first few property violations.
struct FuzzStats: CustomStringConvertible {
    var accepted = 0, rejected = 0, violations = [String]()
    var messages = Set<String>()

    mutating func record(_ body: () throws -> Void) {
        do { try body(); accepted += 1 } catch let e as HarnessError {
            rejected += 1
            if e.message.isEmpty || e.message.contains("\n") || e.message.contains("\r") {
                violations.append("bad message: \(e.message.debugDescription)")
            }
            if messages.count < 10_000 { messages.insert(String(e.message.split(separator: ":").dropFirst().joined().prefix(40))) }
        } catch {
            violations.append("not a HarnessError: \(error)")
        }
    }

    var description: String {
        "\(accepted + rejected) mutants: \(accepted) accepted, \(rejected) rejected (\(messages.count) distinct messages), \(violations.count) violations"
    }

    func assertSound(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThan(rejected, 0, "the mutator never produced a bad file", file: file, line: line)
        XCTAssertTrue(violations.isEmpty, violations.prefix(5).joined(separator: "\n"), file: file, line: line)
    }
}

/// Deterministic RNG (SplitMix64) so every run sees the same mutants.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func fnv1a(_ s: String) -> UInt64 {
    s.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
}

/// Mutations of seed files. `json` works on JSON text; `safetensors` mutates the
/// raw bytes, the length field, or the JSON header (re-stamping the length so the
/// deeper checks are reached).
enum Mutator {
    static let interestingNumbers = ["-1", "0", "-0", "1", "3", "7", "1.5", "-9223372036854775808", "9223372036854775807",
                                     "9223372036854775808", "18446744073709551615", "4294967296", "3037000500", "1e300", "-1e300",
                                     "1e400", "9e15", "4611686018427387904", "2147483648", "65536", "100000000", "null", "true", "\"7\""]
    static let interestingStrings = ["\"\"", "\"F64\"", "\"I8\"", "\"F32\"", "\"BF16\"", "\"__metadata__\"", "\"mla\"", "\"mlra8\"",
                                     "\"a\\nb\"", "\"\\u0000\"", "\"kernel\"", "\"model\"", "\"f64\"", "\"x\"", "{}", "[]",
                                     "\"dtype\"", "\"shape\"", "\"data_offsets\""]
    static let garbage = ["[[[[[[[[[[]]]]]]]]]]", "{\"a\":{\"b\":{\"c\":[1,[2,[3,{}]]]}}}", "[1,\"x\",null,{},[]]",
                          "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
                          "[" + String(repeating: "9", count: 400) + "]"]

    static func bytes(_ d: Data, rng: inout SplitMix64) -> Data {
        var b = [UInt8](d)
        switch Int.random(in: 0..<5, using: &rng) {
        case 0:   // bit flips
            for _ in 0..<Int.random(in: 1...4, using: &rng) where !b.isEmpty {
                let i = Int.random(in: 0..<b.count, using: &rng); b[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            }
        case 1:   // insert bytes
            let i = Int.random(in: 0...b.count, using: &rng)
            let pool: [UInt8] = Array("\"{}[],:-9e.\\n".utf8) + [0, 0xFF, 0x0A, 0x80]
            b.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in pool.randomElement(using: &rng)! }, at: i)
        case 2:   // delete a range
            guard !b.isEmpty else { break }
            let i = Int.random(in: 0..<b.count, using: &rng)
            b.removeSubrange(i..<min(b.count, i + Int.random(in: 1...16, using: &rng)))
        case 3:   // truncate
            b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
        default:  // duplicate a chunk elsewhere
            guard b.count > 2 else { break }
            let i = Int.random(in: 0..<b.count, using: &rng), n = Int.random(in: 1...min(32, b.count - i), using: &rng)
            b.insert(contentsOf: b[i..<(i + n)], at: Int.random(in: 0...b.count, using: &rng))
        }
        return Data(b)
    }

    /// Splits JSON text into tokens: strings, numbers/literals, punctuation, whitespace.
    static func tokens(_ s: String) -> [String] {
        var out = [String](), cur = "", inString = false, escape = false
        for ch in s {
            if inString {
                cur.append(ch)
                if escape { escape = false } else if ch == "\\" { escape = true } else if ch == "\"" { out.append(cur); cur = ""; inString = false }
            } else if ch == "\"" {
                if !cur.isEmpty { out.append(cur) }; cur = "\""; inString = true
            } else if "{}[],:".contains(ch) || ch.isWhitespace {
                if !cur.isEmpty { out.append(cur); cur = "" }; out.append(String(ch))
            } else { cur.append(ch) }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    static func jsonTokens(_ text: String, rng: inout SplitMix64) -> String {
        var t = tokens(text)
        let values = t.indices.filter { !"{}[],: \n\t".contains(t[$0].first ?? " ") || t[$0].first == "\"" }
        guard !values.isEmpty else { return text }
        let i = values.randomElement(using: &rng)!
        switch Int.random(in: 0..<7, using: &rng) {
        case 0: let j = values.randomElement(using: &rng)!; t.swapAt(i, j)              // token swap
        case 1: t[i] = interestingNumbers.randomElement(using: &rng)!                  // huge / negative / odd numbers
        case 2: t[i] = interestingStrings.randomElement(using: &rng)!                  // other strings, wrong types
        case 3: t[i] = garbage.randomElement(using: &rng)!                              // nested garbage
        case 4: t.remove(at: i)                                                          // drop a token
        case 5: t.insert(t[values.randomElement(using: &rng)!] + ",", at: i)             // duplicate a token
        default:                                                                         // many mutations at once
            for _ in 0..<Int.random(in: 2...5, using: &rng) {
                t[values.randomElement(using: &rng)!] = (interestingNumbers + interestingStrings).randomElement(using: &rng)!
            }
        }
        return t.joined()
    }

    static func json(_ seed: Data, rng: inout SplitMix64) -> Data {
        var d = seed
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            if Bool.random(using: &rng), let s = String(data: d, encoding: .utf8) { d = Data(jsonTokens(s, rng: &rng).utf8) }
            else { d = bytes(d, rng: &rng) }
        }
        return d
    }

    static func safetensors(_ seed: Data, rng: inout SplitMix64) -> Data {
        let n = Int(seed.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = seed.subdata(in: 8..<(8 + n)), body = seed.subdata(in: (8 + n)..<seed.count)
        func stamp(_ h: Data, _ len: UInt64? = nil) -> Data {
            var d = Data()
            withUnsafeBytes(of: (len ?? UInt64(h.count)).littleEndian) { d.append(contentsOf: $0) }
            return d + h + body
        }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1, 2:   // raw bytes anywhere
            return bytes(seed, rng: &rng)
        case 3:         // header length field
            let choices: [UInt64] = [0, 1, 2, UInt64(n - 1), UInt64(n + 1), UInt64(seed.count - 8), UInt64(seed.count - 7), UInt64(seed.count),
                                     100_000_000, 100_000_001, UInt64(Int.max), UInt64(Int.max) + 1, UInt64.max, UInt64.random(in: 0...UInt64.max, using: &rng)]
            return stamp(header, choices.randomElement(using: &rng)!)
        case 4:         // the data section: grow or shrink it
            var b = body
            if Bool.random(using: &rng) || b.isEmpty { b.append(contentsOf: [UInt8](repeating: 0x7F, count: Int.random(in: 1...16, using: &rng))) }
            else { b = b.prefix(Int.random(in: 0..<b.count, using: &rng)) }
            var d = Data(); withUnsafeBytes(of: UInt64(n).littleEndian) { d.append(contentsOf: $0) }
            return d + header + b
        default:        // JSON header edits, length re-stamped (sometimes raw bytes of the header)
            var h = header
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                if Int.random(in: 0..<4, using: &rng) > 0, let s = String(data: h, encoding: .utf8) { h = Data(jsonTokens(s, rng: &rng).utf8) }
                else { h = bytes(h, rng: &rng) }
            }
            return stamp(h)
        }
    }
}
