import Foundation
import XCTest

/// docs/architecture.md against the tree: every `Sources/…` or `Tests/…` path it names
/// exists, and every module under Sources/ is named in it. docs/method.md is the one
/// method document every citation points at.
final class ArchitectureDocTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testEveryPathTheArchitecturePageNamesExistsAndEveryModuleIsNamed() throws {
        let text = try String(contentsOf: root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
        let regex = try NSRegularExpression(pattern: "`((?:Sources|Tests)/[^`\\s]+)`")
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
