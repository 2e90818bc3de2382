import Foundation

/// A JSON reader (RFC 8259) for the harness's input files that refuses what
/// `JSONSerialization` and `JSONDecoder` silently accept: a key that appears twice
/// in an object (they keep the last one, so a safetensors header could name a
/// tensor twice and one entry would vanish), and it keeps `true` apart from `1`
/// (`NSNumber` bridging read `"shape": [true, 64]` as `[1, 64]`). Numbers keep
/// their literal text, so an integer is read exactly and `1.0` or `1e3` is not an
/// integer. Nesting is bounded, so hostile input cannot exhaust the stack.
public enum StrictJSON {
    public indirect enum Value: Equatable {
        /// Members in file order (keys are unique: `parse` refuses duplicates).
        case object([Member])
        case array([Value])
        case string(String)
        /// The number's literal text, e.g. "-12", "1.5e3".
        case number(String)
        case bool(Bool)
        case null

        /// The members of an object, else nil.
        public var members: [Member]? { if case .object(let m) = self { return m }; return nil }
        /// The member `key` of an object, else nil.
        public subscript(key: String) -> Value? { members?.first { $0.key == key }?.value }
        /// An integer written as one (`-?digits`) that fits in an Int; not a bool, not 1.0.
        public var integer: Int? {
            guard case .number(let text) = self, !text.contains(where: { ".eE".contains($0) }) else { return nil }
            return Int(text)
        }
    }

    public struct Member: Equatable {
        public let key: String
        public let value: Value
    }

    /// Why a text is refused: one line; `duplicateKey` (with the keys of the objects
    /// enclosing it, outermost first) when the reason is a key given twice.
    public struct ParseError: Error, Equatable {
        public let message: String
        public let duplicateKey: String?
        public let path: [String]
    }

    /// Deepest nesting of arrays and objects accepted (far beyond any file of the harness).
    public static let maxDepth = 128

    public static func parse(_ data: Data) throws -> Value {
        var p = Parser(bytes: [UInt8](data))
        p.skipSpace()
        let v = try p.value(depth: 0, path: [])
        p.skipSpace()
        guard p.i == p.bytes.count else { throw p.error("unexpected \(p.describe()) after the JSON value") }
        return v
    }

    struct Parser {
        let bytes: [UInt8]
        var i = 0

        func error(_ why: String) -> ParseError { ParseError(message: "\(why) at byte \(i)", duplicateKey: nil, path: []) }

        func describe() -> String {
            guard i < bytes.count else { return "end of input" }
            let b = bytes[i]
            return b >= 0x21 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : String(format: "byte 0x%02X", b)
        }

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func value(depth: Int, path: [String]) throws -> Value {
            guard i < bytes.count else { throw error("unexpected end of input") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1, path: path)
            case UInt8(ascii: "["): return try array(depth: depth + 1, path: path)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error("unexpected \(describe())")
            }
        }

        mutating func literal(_ word: String) throws {
            let w = Array(word.utf8)
            guard bytes.count - i >= w.count, Array(bytes[i..<(i + w.count)]) == w else { throw error("unexpected \(describe())") }
            i += w.count
        }

        mutating func object(depth: Int, path: [String]) throws -> Value {
            guard depth <= StrictJSON.maxDepth else { throw error("nesting deeper than \(StrictJSON.maxDepth) levels") }
            i += 1
            var members = [Member](), seen = Set<String>()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a key string, found \(describe())") }
                let keyAt = i
                let key = try string()
                guard seen.insert(key).inserted else {
                    throw ParseError(message: "key '\(key)' appears twice at byte \(keyAt)", duplicateKey: key, path: path)
                }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':', found \(describe())") }
                i += 1
                skipSpace()
                members.append(Member(key: key, value: try value(depth: depth, path: path + [key])))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end of input in an object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                guard bytes[i] == UInt8(ascii: "}") else { throw error("expected ',' or '}', found \(describe())") }
                i += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int, path: [String]) throws -> Value {
            guard depth <= StrictJSON.maxDepth else { throw error("nesting deeper than \(StrictJSON.maxDepth) levels") }
            i += 1
            var items = [Value]()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth, path: path))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end of input in an array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                guard bytes[i] == UInt8(ascii: "]") else { throw error("expected ',' or ']', found \(describe())") }
                i += 1
                return .array(items)
            }
        }

        /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, returned as written.
        mutating func number() throws -> String {
            let start = i
            func digits() -> Int { let s = i; while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }; return i - s }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw error("malformed number") }
            if bytes[i] == UInt8(ascii: "0") { i += 1 } else { _ = digits() }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw error("malformed number") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw error("malformed number") }
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        /// A string with its escapes decoded; raw control characters and invalid UTF-8 are refused.
        mutating func string() throws -> String {
            i += 1
            var out = [UInt8]()
            while true {
                guard i < bytes.count else { throw error("unterminated string") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { i += 1; break }
                guard b >= 0x20 else { throw error("raw control character in a string") }
                guard b == UInt8(ascii: "\\") else { out.append(b); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw error("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {   // a high surrogate must be followed by a low one
                        guard bytes.count - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in a string")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("unpaired surrogate in a string") }
                    out += Array(String(Character(u)).utf8)
                default: throw error("invalid escape in a string")
                }
            }
            guard let s = String(bytes: out, encoding: .utf8) else { throw error("invalid UTF-8 in a string") }
            return s
        }

        mutating func hex4() throws -> UInt32 {
            let isHex = { (b: UInt8) in (0x30...0x39).contains(b) || (0x41...0x46).contains(b) || (0x61...0x66).contains(b) }
            guard bytes.count - i >= 4, bytes[i..<(i + 4)].allSatisfy(isHex),
                  let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                throw error("invalid \\u escape in a string")
            }
            i += 4
            return v
        }
    }
}

extension StrictJSON {
    /// Reads a harness input file of `kind` ("config", "spec") as `T`; every failure is
    /// one line naming the file and the key: bad syntax, a key given twice (the decoder
    /// would keep the last), a number that is not an integer (every number of a config
    /// or spec is one; the decoder's own message for 4.5 was "not valid JSON"), a key
    /// missing or of the wrong type. `check` sees the parsed tree first (unknown keys);
    /// `integerKeys` limits the integer rule to these top-level keys (nil: every number);
    /// `invalidValue` may phrase a refused value at a coding path; `hint` ends every message.
    /// `renames` (new name → old) reads a key written under its old name as the new one (the
    /// caller's `check` warns about it, and refuses a key given under both).
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, path: String, kind: String,
                                            check: (Value) throws -> Void = { _ in }, integerKeys: [String]? = nil,
                                            invalidValue: ([String]) -> String? = { _ in nil }, renames: KeyRenames = [:],
                                            hint: String = "") throws -> T {
        do {
            return try decodeStrictly(type, from: data, path: path, kind: kind, check: check, integerKeys: integerKeys,
                                      invalidValue: invalidValue, renames: renames)
        } catch let e as HarnessError where !hint.isEmpty {
            throw HarnessError(e.message + hint)
        }
    }

    static func decodeStrictly<T: Decodable>(_ type: T.Type, from data: Data, path: String, kind: String,
                                             check: (Value) throws -> Void, integerKeys: [String]?,
                                             invalidValue: ([String]) -> String?, renames: KeyRenames) throws -> T {
        let tree: Value
        do { tree = try parse(data) } catch let e as ParseError {
            if let key = e.duplicateKey {
                throw HarnessError("\(path): \(kind) key '\(dotted(e.path + [key]))' appears twice")
            }
            throw HarnessError("\(path): \(kind) is not valid JSON")
        }
        try check(tree)
        let checked = integerKeys.map { keys in Value.object((tree.members ?? []).filter { keys.contains($0.key) }) } ?? tree
        if let (at, text) = firstNonInteger(checked, at: []) {
            let beyond = Double(text).map { $0 == $0.rounded() } ?? false
            throw HarnessError("\(path): \(kind) key '\(dotted(at))' " + (beyond ? "is \(text), a number beyond a 64-bit integer" : "must be an integer, got \(text)"))
        }
        let decoder = JSONDecoder()
        if !renames.isEmpty { decoder.keyDecodingStrategy = RenamedKeys.readingOldNames(renames) }
        do { return try decoder.decode(T.self, from: data) } catch DecodingError.keyNotFound(let key, _) {
            throw HarnessError("\(path): \(kind) is missing key '\(key.stringValue)'")
        } catch DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx) {
            throw HarnessError("\(path): \(kind) key '\(dotted(ctx.codingPath.map(\.stringValue)))' has the wrong type")
        } catch DecodingError.dataCorrupted(let ctx) where !ctx.codingPath.isEmpty {
            let at = ctx.codingPath.map(\.stringValue)
            throw HarnessError("\(path): " + (invalidValue(at) ?? "\(kind) key '\(dotted(at))' has an invalid value"))
        } catch {
            throw HarnessError("\(path): \(kind) holds a value its key cannot take")
        }
    }

    /// The first number (depth first, file order) that is not an integer in Int's range, with its path.
    static func firstNonInteger(_ v: Value, at path: [String]) -> ([String], String)? {
        switch v {
        case .number(let text): return v.integer == nil ? (path, text) : nil
        case .array(let items):
            for (i, item) in items.enumerated() { if let found = firstNonInteger(item, at: path + ["\(i)"]) { return found } }
        case .object(let members):
            for m in members { if let found = firstNonInteger(m.value, at: path + [m.key]) { return found } }
        default: break
        }
        return nil
    }

    /// A key path as messages print it ("grids.0.variants"), control characters escaped.
    static func dotted(_ path: [String]) -> String { SafeTensorsFile.printable(path.joined(separator: ".")) }
}
