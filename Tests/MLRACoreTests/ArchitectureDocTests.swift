import Foundation
import XCTest

/// docs/architecture.md against the tree: every `Sources/…`, `Tests/…` or `integration/…`
/// path it names exists, and every module under Sources/ is named in it. docs/method.md is the one
/// method document every citation points at.
final class ArchitectureDocTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testEveryPathTheArchitecturePageNamesExistsAndEveryModuleIsNamed() throws {
        let text = try String(contentsOf: root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
        let regex = try NSRegularExpression(pattern: "`((?:Sources|Tests|integration)/[^`\\s]+)`")
        let named = regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range(at: 1), in: text)!]).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        }
        XCTAssertGreaterThan(named.count, 20)
        for path in Set(named) {
            XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path), "docs/architecture.md names \(path)")
        }
        let modules = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Sources").path)
            .filter { !$0.hasPrefix(".") }
        for m in modules { XCTAssertTrue(named.contains("Sources/\(m)"), "docs/architecture.md does not name the module Sources/\(m)") }
    }

    /// A clone on a case-insensitive file system (macOS, Windows) merges paths that differ
    /// only in case (`tests/` beside `Tests/`): no two tracked paths may.
    func testNoTwoPathsDifferOnlyInCase() throws {
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "-C", root.path, "ls-files"]
        let pipe = Pipe()
        git.standardOutput = pipe
        try git.run()
        let listing = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        git.waitUntilExit()
        try XCTSkipIf(git.terminationStatus != 0, "not a git checkout")
        var seen = [String: String]()
        var clashes = [String]()
        for file in listing.split(separator: "\n").map(String.init) {
            // Every folder on the way, and the file itself.
            let parts = file.split(separator: "/").map(String.init)
            for n in 1...parts.count {
                let path = parts.prefix(n).joined(separator: "/")
                if let other = seen[path.lowercased()], other != path { clashes.append("\(other) / \(path)") }
                seen[path.lowercased()] = path
            }
        }
        XCTAssertEqual(Set(clashes).sorted(), [], "paths that collide on a case-insensitive file system")
    }

    func testCitationsPointAtTheMethodPage() throws {
        let method = try String(contentsOf: root.appendingPathComponent("docs/method.md"), encoding: .utf8)
        for section in 1...7 { XCTAssertTrue(method.contains("\n## \(section). "), "docs/method.md has no section \(section)") }
        // The method used to live outside the repository as "SPEC"; nothing may cite that any more.
        let enumerator = FileManager.default.enumerator(atPath: root.path)!
        var stale = [String]()
        while let path = enumerator.nextObject() as? String {
            // Build outputs, the venv, results and reports are not the project's text.
            let name = (path as NSString).lastPathComponent
            if name.hasPrefix(".") || ["dist", "results", "report", "__pycache__"].contains(name) { enumerator.skipDescendants(); continue }
            guard [".swift", ".py", ".md", ".sh", ".cu", ".c", ".h", ".csv", ".sbatch", ".txt"].contains(where: path.hasSuffix) else { continue }
            guard let text = try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) else { continue }
            if text.contains("SPEC §") || text.contains("SPEC.md") { stale.append(path) }
        }
        XCTAssertEqual(stale.filter { $0 != "Tests/MLRACoreTests/ArchitectureDocTests.swift" }, [], "cite docs/method.md (method §N) instead")
    }
}
