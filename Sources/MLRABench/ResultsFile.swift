import Foundation
import MLRACore

/// The sweep's CSV (schema in docs/csv-schema.md): its columns are `SweepRow`'s coding
/// keys, the one list of their names and order; a test holds the document to it.
public enum ResultsSchema {
    public static let version = "7"
    public static let columns = SweepRow.columns
    public static let sampleColumns = [
        "run_id", "config_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head", "kv_lora_rank", "kv_dtype",
        "threads", "timing_mode", "repeat", "step_index", "step_us", "kernel_us", "allreduce_us",
        "imbalance_us",
    ]
}

/// An append-only CSV that never holds a partial row. Opening is two steps, so
/// that a run can check every input before it modifies any file: `inspect` reads
/// the file's bytes and decides (refusing a header that is not exactly the
/// schema's, finding a torn last line) without writing anything; `init(_:)` then
/// applies the repair and opens the file for appending. Everything works on bytes,
/// never on decoded text, so invalid UTF-8 in one row cannot move a cut point.
public final class AppendOnlyCSV {
    public let path: String
    public let columns: [String]
    private let fd: Int32

    /// What `inspect` found in a file, and what opening it will do.
    public struct Inspection {
        public let path: String
        public let columns: [String]
        /// The complete rows already present (for resume), header excluded.
        public let rows: [[String: String]]
        let repair: Repair
    }

    enum Repair: Equatable {
        case writeHeader          // absent or empty file
        case none                 // ends with a complete line
        case cut(to: Int)         // a torn last row: keep the first `to` bytes
        case finishHeader         // exactly the header, its newline missing
        case rewriteHeader        // a torn header (a prefix of it, no newline): ours, cut short
    }

    /// Reads `path` and decides how to open it; modifies nothing. Throws for a file
    /// that cannot be read or whose header is not exactly `columns`. `wantRows: false`
    /// skips parsing the rows (a samples file has one per timed step: millions of
    /// dictionaries that nobody reads).
    public static func inspect(path: String, columns: [String], wantRows: Bool = true) throws -> Inspection {
        let header = Array(columns.joined(separator: ",").utf8)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            return Inspection(path: path, columns: columns, rows: [], repair: .writeHeader)
        }
        guard !isDir.boolValue else { throw HarnessError("\(path) is a folder, not a file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("\(path): cannot read") }
        let bytes = [UInt8](data)
        if bytes.isEmpty { return Inspection(path: path, columns: columns, rows: [], repair: .writeHeader) }
        guard let firstNewline = bytes.firstIndex(of: 10) else {
            if bytes == header { return Inspection(path: path, columns: columns, rows: [], repair: .finishHeader) }
            if bytes.count < header.count, Array(header.prefix(bytes.count)) == bytes {
                return Inspection(path: path, columns: columns, rows: [], repair: .rewriteHeader)
            }
            throw otherSchema(path, bytes)
        }
        guard Array(bytes[..<firstNewline]) == header else { throw otherSchema(path, bytes) }
        let complete = bytes.lastIndex(of: 10)! + 1   // bytes after the last newline are a torn row
        let rows = wantRows ? parseRows(bytes[..<complete], columns: columns) : []
        return Inspection(path: path, columns: columns, rows: rows, repair: complete == bytes.count ? .none : .cut(to: complete))
    }

    /// A file of an older schema is never appended to with rows of this one (a reader
    /// would find two layouts under one header): the sweep goes to a new file, and the
    /// analysis merges both.
    static func otherSchema(_ path: String, _ bytes: [UInt8]) -> HarnessError {
        let note = schemaNote(bytes)
        return HarnessError("\(path) has another schema (its header differs from this harness's schema \(ResultsSchema.version)"
                            + note + "); the file is left unchanged; write to a new file"
                            + (note.isEmpty ? "" : " (the analysis reads the old and the new file together)"))
    }

    /// Opens an inspected file for appending, after applying its repair (cut a torn
    /// last row, write or finish the header), each step synced to disk.
    public init(_ inspection: Inspection) throws {
        path = inspection.path
        columns = inspection.columns
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HarnessError("\(path): cannot open for writing (\(errnoText(errno)))") }
        let header = columns.joined(separator: ",")
        switch inspection.repair {
        case .none: break
        case .writeHeader:
            try write(lines: [header])
            let code = fsyncFolder(folderOf(path))   // the new file's name must survive a crash too
            guard code == 0 else { throw HarnessError("\(path): fsync of its folder failed (\(errnoText(code)))") }
        case .finishHeader: try write(bytes: [10])
        case .rewriteHeader: try truncate(to: 0, why: "a torn header"); try write(lines: [header])
        case .cut(let keep): try truncate(to: off_t(keep), why: "a partial last row")
        }
    }

    /// `inspect` then `init(_:)`, for callers with nothing else to check first.
    public convenience init(path: String, columns: [String]) throws {
        try self.init(Self.inspect(path: path, columns: columns))
    }

    deinit { close(fd) }

    /// The file's size in bytes: where the next append starts.
    public func size() throws -> off_t {
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else { throw HarnessError("\(path): cannot find its end (\(errnoText(errno)))") }
        return end
    }

    /// Cuts the file back to `size` bytes and syncs it.
    public func truncate(to size: off_t, why: String) throws {
        guard ftruncate(fd, size) == 0 else { throw HarnessError("\(path): cannot cut off \(why) (\(errnoText(errno)))") }
        guard fsync(fd) == 0 else { throw HarnessError("\(path): fsync after cutting off \(why) failed (\(errnoText(errno)))") }
    }

    /// ", the file's rows are schema N" when the file's first row says so, else "".
    static func schemaNote(_ bytes: [UInt8]) -> String {
        let lines = bytes.split(separator: 10, maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count > 2 else { return "" }   // no complete first row
        let header = parseCSVLine(String(decoding: lines[0], as: UTF8.self)), first = parseCSVLine(String(decoding: lines[1], as: UTF8.self))
        guard let i = header.firstIndex(of: "schema_version"), i < first.count, !first[i].isEmpty,
              first[i] != ResultsSchema.version else { return "" }
        return ", the file's rows are schema \(first[i])"
    }

    /// Complete lines after the header, as column → value; lines whose field count
    /// differs from the header's are not rows. Split on the newline byte, so a
    /// malformed UTF-8 sequence stays inside its own line.
    static func parseRows(_ bytes: ArraySlice<UInt8>, columns: [String]) -> [[String: String]] {
        bytes.split(separator: 10, omittingEmptySubsequences: true).dropFirst().compactMap { line in
            let fields = parseCSVLine(String(decoding: line, as: UTF8.self))
            guard fields.count == columns.count else { return nil }
            return Dictionary(uniqueKeysWithValues: zip(columns, fields))
        }
    }

    /// Rows of the file as column → value, skipping the header and a torn last line.
    public static func readRows(path: String) -> [[String: String]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let bytes = [UInt8](data)
        guard let complete = bytes.lastIndex(of: 10).map({ $0 + 1 }), let nl = bytes.firstIndex(of: 10) else { return [] }
        let header = parseCSVLine(String(decoding: bytes[..<nl], as: UTF8.self))
        return parseRows(bytes[..<complete], columns: header)
    }

    /// Cuts off the longest run of complete rows at the end of the file for which
    /// `orphan` holds (samples whose configuration's result row never made it to
    /// disk); returns how many were cut.
    public func dropTrailingRows(where orphan: ([String: String]) -> Bool) throws -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("\(path): cannot read") }
        let bytes = [UInt8](data)
        var end = bytes.count, dropped = 0
        while end > 0, bytes[end - 1] == 10 {
            let start = bytes[..<(end - 1)].lastIndex(of: 10).map { $0 + 1 } ?? 0
            guard start > 0 else { break }   // the header
            let fields = parseCSVLine(String(decoding: bytes[start..<(end - 1)], as: UTF8.self))
            guard fields.count == columns.count, orphan(Dictionary(uniqueKeysWithValues: zip(columns, fields))) else { break }
            end = start
            dropped += 1
        }
        if dropped > 0 { try truncate(to: off_t(end), why: "\(dropped) rows without a result row") }
        return dropped
    }

    /// Appends complete lines in one write and syncs them to disk. If any part fails
    /// (a full disk, a quota, an I/O error, fsync), the file is cut back to where
    /// this append started, so it never keeps part of what was asked.
    public func write(lines: [String]) throws {
        try write(bytes: Array(lines.map { $0 + "\n" }.joined().utf8))
    }

    func write(bytes: [UInt8]) throws {
        let start = try size()   // O_APPEND and the run's lock: nobody else appends, so this is where ours begins
        var code = writeAll(fd, bytes), what = "write"
        if code == 0, fsync(fd) != 0 { code = errno; what = "fsync" }
        guard code != 0 else { return }
        let restored = ftruncate(fd, start) == 0 && fsync(fd) == 0
        throw HarnessError("\(path): cannot append: \(what) failed (\(errnoText(code))); "
                           + (restored ? "the file was cut back to its last whole row" : "cutting the file back to \(start) bytes also failed (\(errnoText(errno)))"))
    }

    public func append(_ rows: [[String: String]]) throws {
        try write(lines: rows.map { row in columns.map { csvEscape(row[$0] ?? "") }.joined(separator: ",") })
    }
}

public func csvEscape(_ s: String) -> String {
    s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

/// Splits one CSV line (RFC 4180 quoting).
public func parseCSVLine(_ line: String) -> [String] {
    var fields = [String](), field = "", quoted = false
    var it = Array(line).makeIterator()
    var pending: Character? = nil
    while let c = pending ?? it.next() {
        pending = nil
        if quoted {
            if c == "\"" {
                if let n = it.next() { if n == "\"" { field.append("\"") } else { quoted = false; pending = n } } else { quoted = false }
            } else { field.append(c) }
        } else if c == "\"" { quoted = true }
        else if c == "," { fields.append(field); field = "" }
        else { field.append(c) }
    }
    fields.append(field)
    return fields
}
