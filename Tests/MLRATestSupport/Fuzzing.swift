import Foundation
import MLRACore
import XCTest

/// The seed corpus of the fuzz tests (Tests/Fuzz/corpus), shared by the test targets.
public enum FuzzCorpus {
    public static var folder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus")
    }

    /// (file name, bytes) of every seed whose name ends with `suffix`, sorted by name.
    public static func seeds(suffix: String = "", prefix: String = "") throws -> [(String, Data)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(suffix) && $0.hasPrefix(prefix) }.sorted()
        return try names.map { ($0, try Data(contentsOf: folder.appendingPathComponent($0))) }
    }
}

/// Counts outcomes and keeps the first few property violations.
public struct FuzzStats: CustomStringConvertible {
    public init() {}
    public var accepted = 0, rejected = 0, violations = [String]()
    public var messages = Set<String>()

    public mutating func record(_ body: () throws -> Void) {
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

    public var description: String {
        "\(accepted + rejected) mutants: \(accepted) accepted, \(rejected) rejected (\(messages.count) distinct messages), \(violations.count) violations"
    }

    public func assertSound(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertGreaterThan(rejected, 0, "the mutator never produced a bad file", file: file, line: line)
        XCTAssertTrue(violations.isEmpty, violations.prefix(5).joined(separator: "\n"), file: file, line: line)
    }
}

/// Deterministic RNG (SplitMix64) so every run sees the same mutants.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public func fnv1a(_ s: String) -> UInt64 {
    s.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
}

/// Mutations of seed files. `json` works on JSON text; `safetensors` mutates the
/// raw bytes, the length field, or the JSON header (re-stamping the length so the
/// deeper checks are reached).
public enum Mutator {
    public static let interestingNumbers = ["-1", "0", "-0", "1", "3", "7", "1.5", "-9223372036854775808", "9223372036854775807",
                                     "9223372036854775808", "18446744073709551615", "4294967296", "3037000500", "1e300", "-1e300",
                                     "1e400", "9e15", "4611686018427387904", "2147483648", "65536", "100000000", "null", "true", "\"7\""]
    public static let interestingStrings = ["\"\"", "\"F64\"", "\"I8\"", "\"F32\"", "\"BF16\"", "\"__metadata__\"", "\"mla\"", "\"mlra8\"",
                                     "\"a\\nb\"", "\"\\u0000\"", "\"kernel\"", "\"model\"", "\"f64\"", "\"x\"", "{}", "[]",
                                     "\"dtype\"", "\"shape\"", "\"data_offsets\"",
                                     "\"layer\"", "\"grids\"", "\"defaults\"", "[1,2,3,4,5,6,7,8]", "[\"mla\",\"gqa\",\"mha\",\"mlra2\"]",
                                     "\"variant\"", "\"context\"", "\"n_head\"", "[true,1]", "[1.0,2]"]
    public static let garbage = ["[[[[[[[[[[]]]]]]]]]]", "{\"a\":{\"b\":{\"c\":[1,[2,[3,{}]]]}}}", "[1,\"x\",null,{},[]]",
                          "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
                          "[" + String(repeating: "9", count: 400) + "]"]

    public static func bytes(_ d: Data, rng: inout SplitMix64) -> Data {
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
    public static func tokens(_ s: String) -> [String] {
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

    public static func jsonTokens(_ text: String, rng: inout SplitMix64) -> String {
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

    public static func json(_ seed: Data, rng: inout SplitMix64) -> Data {
        var d = seed
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            if Bool.random(using: &rng), let s = String(data: d, encoding: .utf8) { d = Data(jsonTokens(s, rng: &rng).utf8) }
            else { d = bytes(d, rng: &rng) }
        }
        return d
    }

    /// A valid safetensors file's header JSON and data section.
    static func split(_ seed: Data) -> (header: Data, body: Data) {
        let n = Int(seed.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        return (seed.subdata(in: 8..<(8 + n)), seed.subdata(in: (8 + n)..<seed.count))
    }

    /// A safetensors file from a header and a data section; the length field is the header's unless `length` is given.
    static func stamp(_ header: Data, _ body: Data, length: UInt64? = nil) -> Data {
        var d = Data()
        withUnsafeBytes(of: (length ?? UInt64(header.count)).littleEndian) { d.append(contentsOf: $0) }
        return d + header + body
    }

    public static func safetensors(_ seed: Data, rng: inout SplitMix64) -> Data {
        let (header, body) = split(seed)
        let n = header.count
        func stamp(_ h: Data, _ len: UInt64? = nil) -> Data { Mutator.stamp(h, body, length: len) }
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
            return Mutator.stamp(header, b)
        default:        // JSON header edits, length re-stamped (sometimes raw bytes of the header)
            var h = header
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                if Int.random(in: 0..<4, using: &rng) > 0, let s = String(data: h, encoding: .utf8) { h = Data(jsonTokens(s, rng: &rng).utf8) }
                else { h = bytes(h, rng: &rng) }
            }
            return stamp(h)
        }
    }

    /// A safetensors seed with one of its tensors named a second time (its entry copied,
    /// sometimes mutated, to the front of the header): every such file must be refused.
    public static func duplicateEntry(_ seed: Data, rng: inout SplitMix64) -> Data? {
        let (headerData, body) = split(seed)
        let header = String(decoding: headerData, as: UTF8.self)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(header.utf8))) as? [String: Any],
              let name = object.keys.filter({ $0 != "__metadata__" }).sorted().randomElement(using: &rng),
              let entry = try? JSONSerialization.data(withJSONObject: object[name]!),
              let quoted = try? JSONSerialization.data(withJSONObject: [name]) else { return nil }
        var copy = String(decoding: entry, as: UTF8.self)
        if Bool.random(using: &rng) { copy = jsonTokens(copy, rng: &rng) }
        let text = "{" + String(decoding: quoted.dropFirst().dropLast(), as: UTF8.self) + ":" + copy + ","
            + header.drop { $0 != "{" }.dropFirst()
        return stamp(Data(text.utf8), body)
    }

    /// `seed` (a JSON object) with `"key": value` inserted as the first member of one of its
    /// objects, picked at random (the root among them): an unknown key, or a duplicate when
    /// `key` is already there.
    public static func insertingMember(_ seed: Data, key: String, value: String, rootOnly: Bool = false,
                                       rng: inout SplitMix64) -> Data {
        var t = tokens(String(decoding: seed, as: UTF8.self))
        let opens = t.indices.filter { t[$0] == "{" }
        guard let at = rootOnly ? opens.first : opens.randomElement(using: &rng) else { return seed }
        let next = t[(at + 1)...].first { !$0.allSatisfy(\.isWhitespace) }
        t.insert("\"\(key)\":" + value + (next == "}" ? "" : ","), at: at + 1)
        return Data(t.joined().utf8)
    }
}
