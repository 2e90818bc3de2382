import Foundation
import MLRACore

/// The sweep's CSV (schema in docs/csv-schema.md; this list is the one source
/// of the column order, and a test holds the document to it).
public enum ResultsSchema {
    public static let version = "2"
    public static let columns = [
        "schema_version", "run_id", "harness_version", "git_rev", "host", "mpi_library", "world_size", "date_utc",
        "calib_threads", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops", "calib_fma_width",
        "variant", "scope", "tp", "dp", "tp_group", "context", "batch", "n_layer", "n_embd", "n_head", "head_dim",
        "rope_dim", "kv_lora_rank", "q_lora_rank", "block_width", "kv_heads", "intermediate_size", "vocab_size", "kv_dtype",
        "threads", "kernel_isa", "timing_mode", "cold_cache",
        "kv_elems_per_token", "kv_bytes_per_token", "kv_bytes_per_rank", "kernel_bytes_per_step", "kernel_flops_per_step",
        "weight_bytes_per_rank", "allreduce_bytes_per_step", "allreduce_count_per_step",
        "validation", "validation_max_err", "warmup_steps", "timed_steps", "timer_resolution_us",
        "step_us_median", "step_us_p10", "step_us_p90", "step_us_min", "step_us_max",
        "kernel_us_median", "kernel_us_p10", "kernel_us_p90", "allreduce_us_median",
        "tokens_per_s", "achieved_gbs", "achieved_gflops", "roofline_us", "roofline_fraction",
    ]
    public static let sampleColumns = [
        "run_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head", "kv_lora_rank", "kv_dtype",
        "threads", "timing_mode", "step_index", "step_us", "kernel_us", "allreduce_us",
    ]
}

/// An append-only CSV that never holds a partial row: each call writes whole
/// lines with one write(2) and fsync, so a job killed at any moment leaves only
/// complete rows. Opening an existing file checks its header against the schema
/// (refusing another schema), drops a torn last line left by a crash, and
/// returns the rows already present (for resume).
public final class AppendOnlyCSV {
    public let path: String
    public let columns: [String]
    private let fd: Int32

    public init(path: String, columns: [String]) throws {
        self.path = path
        self.columns = columns
        let header = columns.joined(separator: ",")
        var existing = ""
        if FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("\(path): cannot read") }
            existing = String(decoding: data, as: UTF8.self)
        }
        if !existing.isEmpty {
            let firstLine = existing.prefix { $0 != "\n" }
            guard firstLine == header else {
                throw HarnessError("\(path) has another schema (its header differs from this harness's schema \(ResultsSchema.version)"
                                   + Self.schemaNote(existing) + "); write to a new file")
            }
        }
        let flags = O_WRONLY | O_CREAT | O_APPEND
        fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw HarnessError("\(path): cannot open for writing (\(String(cString: strerror(errno))))") }
        if existing.isEmpty {
            try write(lines: [header])
        } else if !existing.hasSuffix("\n") {
            // A torn last line (a crash mid-write on a filesystem without atomic appends): cut it off.
            let keep = existing.utf8.count - (existing.split(separator: "\n", omittingEmptySubsequences: false).last?.utf8.count ?? 0)
            guard ftruncate(fd, off_t(keep)) == 0 else { throw HarnessError("\(path): cannot truncate a partial last row") }
        }
    }

    deinit { close(fd) }

    /// ", the file's rows are schema N" when the file's first row says so, else "".
    static func schemaNote(_ text: String) -> String {
        let lines = text.split(maxSplits: 2, omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard lines.count > 2 else { return "" }   // no complete first row
        let header = parseCSVLine(String(lines[0])), first = parseCSVLine(String(lines[1]))
        guard let i = header.firstIndex(of: "schema_version"), i < first.count, !first[i].isEmpty,
              first[i] != ResultsSchema.version else { return "" }
        return ", the file's rows are schema \(first[i])"
    }

    /// Rows of the file as column → value, skipping the header.
    public static func readRows(path: String) -> [[String: String]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        if !text.hasSuffix("\n"), !lines.isEmpty { lines.removeLast() }   // torn last line
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
        return lines.dropFirst().compactMap { line in
            let fields = parseCSVLine(line)
            guard fields.count == header.count else { return nil }
            return Dictionary(uniqueKeysWithValues: zip(header, fields))
        }
    }

    /// Appends complete lines in a single write and syncs them to disk.
    public func write(lines: [String]) throws {
        let text = lines.map { $0 + "\n" }.joined()
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw HarnessError("\(path): write failed (\(String(cString: strerror(errno))))") }
        fsync(fd)
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
