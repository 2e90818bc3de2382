import Foundation

/// JSON files the harness writes (calibrations, their store) name their figures as the
/// CSV columns do (`read_gbs` in the file, `calib_read_gbs` in the row). Files written
/// before that rename, beside CSVs users keep, must still load: a key is read under its
/// name or under the name it had (never both: which one would win is a guess), and
/// written under its name only.
public struct JSONKey: CodingKey {
    public let stringValue: String
    public init(_ name: String) { stringValue = name }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}

extension CodingUserInfoKey {
    /// Set to `true` on an encoder to write the names keys had before the rename: a
    /// calibration's identity (`calib_source` `file:…`, part of the resume key) is a hash
    /// of its values under those names, so that renaming keys does not change the identity
    /// of a file that rows and stores already carry.
    public static let oldKeyNames = CodingUserInfoKey(rawValue: "mlra.oldKeyNames")!
}

/// A type's renamed keys: its name → the name files written before the rename use.
public typealias KeyRenames = [String: String]

/// Reads keys under their name or their old one.
public struct RenamedKeyDecoder {
    let container: KeyedDecodingContainer<JSONKey>
    let renames: KeyRenames

    public init(_ decoder: Decoder, _ renames: KeyRenames) throws {
        container = try decoder.container(keyedBy: JSONKey.self)
        self.renames = renames
    }

    public func callAsFunction<T: Decodable>(_ name: String) throws -> T {
        let new = JSONKey(name), previous = JSONKey(renames[name] ?? name)
        guard previous.stringValue != name else { return try container.decode(T.self, forKey: new) }
        switch (container.contains(new), container.contains(previous)) {
        case (true, true):
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath + [new],
                                                    debugDescription: "both '\(name)' and its old name '\(previous.stringValue)' are given"))
        case (false, true): return try container.decode(T.self, forKey: previous)
        default: return try container.decode(T.self, forKey: new)   // absent: "missing key '<name>'"
        }
    }

    /// A key that may be absent (nil then).
    public func optional<T: Decodable>(_ name: String) throws -> T? {
        let old = renames[name] ?? name
        guard container.contains(JSONKey(name)) || container.contains(JSONKey(old)) else { return nil }
        return try self(name) as T
    }
}

/// Writes keys under their name (or, for an identity hash, their old one: `oldKeyNames`).
public struct RenamedKeyEncoder {
    var container: KeyedEncodingContainer<JSONKey>
    let renames: KeyRenames
    let old: Bool

    public init(_ encoder: Encoder, _ renames: KeyRenames) {
        container = encoder.container(keyedBy: JSONKey.self)
        self.renames = renames
        old = encoder.userInfo[.oldKeyNames] as? Bool ?? false
    }

    public mutating func callAsFunction<T: Encodable>(_ value: T, _ name: String) throws {
        try container.encode(value, forKey: JSONKey(old ? renames[name] ?? name : name))
    }
}

public enum RenamedKeys {
    /// Refuses an input file that gives one key under both its names, as one line naming
    /// both (which value was meant cannot be told).
    public static func check(_ tree: StrictJSON.Value, path: String, kind: String, _ renames: KeyRenames) throws {
        for (name, old) in renames.sorted(by: { $0.key < $1.key }) where tree[name] != nil && tree[old] != nil {
            throw HarnessError("\(path): \(kind) gives both '\(name)' and its old name '\(old)'; keep one")
        }
    }
}
