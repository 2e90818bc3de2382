import Foundation
import MLRACore

/// Which samples file goes with a CSV, kept beside it (`<out>.samples-file`, the path on
/// one line): a rerun into the CSV without --samples adds rows whose samples that file
/// will never hold, and the sweep says so. CSVs written before the record existed are
/// matched by the name the README and the jobs give the samples, `<stem>.samples.csv`.
public enum SamplesRecord {
    public static func path(for out: String) -> String { out + ".samples-file" }

    /// Records `samples` (made absolute, so a rerun from another folder finds it).
    public static func write(samples: String, for out: String) throws {
        let text = URL(fileURLWithPath: samples).standardizedFileURL.path + "\n"
        if (try? String(contentsOfFile: path(for: out), encoding: .utf8)) == text { return }
        try writeAtomically(Data(text.utf8), to: path(for: out))
    }

    /// The samples file of earlier runs into `out`, if it still exists.
    public static func existing(for out: String) -> String? {
        let recorded = (try? String(contentsOfFile: path(for: out), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let stem = out.hasSuffix(".csv") ? String(out.dropLast(4)) : out
        let candidate = recorded.flatMap { $0.isEmpty ? nil : $0 } ?? stem + ".samples.csv"
        return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
    }
}
