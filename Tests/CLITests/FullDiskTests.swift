import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 17, a full file system: a failed append is cut back to where it started
/// and says why in words. Before: a short write left part of a row, and the message
/// was "write failed (Success)" (errno is not set by a short write).
final class FullDiskTests: XCTestCase {
    /// Fills `fs` with a filler file until the file system refuses more.
    func fill(_ fs: SmallFileSystem) {
        let fd = open(fs.path("filler"), O_WRONLY | O_CREAT, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x41, count: 1024)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// The append's first write(2) is short (the CSV's last page has room for part of
    /// it), the retry gets ENOSPC: the error names ENOSPC and the file is exactly as it
    /// was before the append.
    func testAShortWriteOnAFullDiskIsCutBackAndNamesTheReason() throws {
        let fs = try SmallFileSystem(bytes: 64 << 10)
        let path = fs.path("r.csv")
        let csv = try AppendOnlyCSV(path: path, columns: ["a", "b"])
        try csv.append([["a": "1", "b": "2"]])
        fill(fs)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let long = String(repeating: "x", count: 10_000)
        XCTAssertThrowsError(try csv.append([["a": long, "b": "y"]])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("no space left on device"), text)
            XCTAssertFalse(text.contains("Success"), text)
            XCTAssertTrue(text.contains("cut back"), text)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before, "the failed append must leave no bytes")
        // Once there is room again, appending works and the file is whole rows.
        unlink(fs.path("filler"))
        try csv.append([["a": "3", "b": "4"]])
        XCTAssertEqual(AppendOnlyCSV.readRows(path: path).map { $0["a"]! }, ["1", "3"])
    }
}
