import Foundation

/// JSON files the harness writes (calibrations, their store) name their figures as the
/// CSV columns do (`read_gbs` in the file, `calib_read_gbs` in the row). Files written
/// before that rename, beside CSVs users keep, must still load: a type lists its renamed
/// keys (its name → the old one), its coding keys carry the new names, and a decoder
/// reads the old names as the new (`readingOldNames`); they are written under the new
/// names only, except for an identity hash (`writingOldNames`).
public typealias KeyRenames = [String: String]

/// A coding key by its name.
public struct JSONKey: CodingKey {
    public let stringValue: String
    public init(_ name: String) { stringValue = name }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}

public enum RenamedKeys {
    /// Reads every key written under an old name as its new name.
    public static func readingOldNames(_ renames: KeyRenames) -> JSONDecoder.KeyDecodingStrategy {
        let current = Dictionary(uniqueKeysWithValues: renames.map { ($0.value, $0.key) })
        return .custom { path in
            let key = path.last!
            return current[key.stringValue].map { JSONKey($0) as CodingKey } ?? key
        }
    }

    /// Writes every renamed key under its old name: a calibration's identity (`calib_source`
    /// `file:…`, part of the resume key) is a hash of its values under those names, so that
    /// renaming keys does not change the identity that rows and stores already carry.
    public static func writingOldNames(_ renames: KeyRenames) -> JSONEncoder.KeyEncodingStrategy {
        .custom { path in
            let key = path.last!
            return renames[key.stringValue].map { JSONKey($0) as CodingKey } ?? key
        }
    }

    /// Refuses an input file that gives one key under both its names, as one line naming
    /// both (which value was meant cannot be told).
    public static func check(_ tree: StrictJSON.Value, path: String, kind: String, _ renames: KeyRenames) throws {
        for (name, old) in renames.sorted(by: { $0.key < $1.key }) where tree[name] != nil && tree[old] != nil {
            throw HarnessError("\(path): \(kind) gives both '\(name)' and its old name '\(old)'; keep one")
        }
    }
}
