import Foundation
import MLRABench
import XCTest

/// Issue 17, the torn-line repair: opening an existing CSV works on its bytes, never
/// on decoded text, so a header without its newline is finished (not cut to 0 bytes),
/// invalid UTF-8 in one row cannot move the cut point, and a header that is not
/// exactly the schema's is refused with the file left byte for byte.
final class ResultsFileTests: XCTestCase {
    let columns = ["a", "b", "c"]
    var header: [UInt8] { Array("a,b,c".utf8) }

    func temp(_ bytes: [UInt8]?) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mlra-csv-\(UUID().uuidString).csv").path
        if let bytes { XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes))) }
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func testANewFileGetsTheHeader() throws {
        let path = try temp(nil)
        try AppendOnlyCSV(path: path, columns: columns).append([["a": "1", "b": "2", "c": "3"]])
        XCTAssertEqual(try bytes(path), Array("a,b,c\n1,2,3\n".utf8))
    }

    /// Before: a header without its final newline was cut to 0 bytes and rows were
    /// then appended with no header.
    func testAHeaderWithoutItsNewlineIsFinishedNotCut() throws {
        let path = try temp(header)
        try AppendOnlyCSV(path: path, columns: columns).append([["a": "1", "b": "2", "c": "3"]])
        XCTAssertEqual(try bytes(path), Array("a,b,c\n1,2,3\n".utf8))
    }

    /// A header cut short by a crash (a prefix of ours) is written again whole.
    func testATornHeaderIsRewritten() throws {
        let path = try temp(Array("a,b".utf8))
        try AppendOnlyCSV(path: path, columns: columns).append([["a": "1", "b": "2", "c": "3"]])
        XCTAssertEqual(try bytes(path), Array("a,b,c\n1,2,3\n".utf8))
    }

    /// Before: with invalid UTF-8 in an earlier row the cut point was computed on the
    /// decoded text (each bad byte became a 3-byte U+FFFD), so ftruncate landed beyond
    /// the last newline and left the torn tail (or NUL bytes) glued to the next row.
    func testInvalidUTF8InAnEarlierRowDoesNotMoveTheCut() throws {
        let good: [UInt8] = header + [10] + Array("x".utf8) + [0xff, 0xfe, 0xc3] + Array(",2,3\n4,5,6\n".utf8)
        let path = try temp(good + Array("7,8".utf8))   // a torn last row
        let csv = try AppendOnlyCSV(path: path, columns: columns)
        XCTAssertEqual(try bytes(path), good, "exactly the torn tail is cut, every earlier byte kept")
        try csv.append([["a": "9", "b": "9", "c": "9"]])
        let after = try bytes(path)
        XCTAssertEqual(after, good + Array("9,9,9\n".utf8))
        XCTAssertFalse(after.contains(0), "no NUL bytes")
        XCTAssertEqual(AppendOnlyCSV.readRows(path: path).count, 3)
    }

    /// Headers that are not exactly the schema's (another column, a reordering, extra
    /// spaces, a header of another tool, or a missing last column with no newline) are
    /// refused, and the file is left byte for byte, torn tail included.
    func testAnotherHeaderIsRefusedAndTheFileIsUntouched() throws {
        for text in ["a,b,d\n1,2,3\n4,5", "a,c,b\n", "a, b,c\n1,2,3\n", "x,y\n1,2\n", "a,b,c,d", "a,b,cc", "\u{feff}a,b,c\n1,2,3\n"] {
            let original = Array(text.utf8)
            let path = try temp(original)
            XCTAssertThrowsError(try AppendOnlyCSV(path: path, columns: columns), text) { error in
                XCTAssertTrue("\(error)".contains("another schema") && "\(error)".contains("left unchanged"), "\(error)")
            }
            XCTAssertEqual(try bytes(path), original, "file must be untouched: \(text)")
        }
    }

    /// `inspect` decides without writing: a torn file stays torn until it is opened.
    func testInspectModifiesNothing() throws {
        let original = header + Array("\n1,2,3\n4,".utf8)
        let path = try temp(original)
        let info = try AppendOnlyCSV.inspect(path: path, columns: columns)
        XCTAssertEqual(info.rows.count, 1)
        XCTAssertEqual(try bytes(path), original)
        _ = try AppendOnlyCSV(info)
        XCTAssertEqual(try bytes(path), header + Array("\n1,2,3\n".utf8))
    }

    func testAFolderIsRefused() throws {
        let path = try temp(nil)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        XCTAssertThrowsError(try AppendOnlyCSV(path: path, columns: columns)) { XCTAssertTrue("\($0)".contains("is a folder"), "\($0)") }
    }
}
