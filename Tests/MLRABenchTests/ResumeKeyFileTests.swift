import Foundation
import MLRABench
import XCTest

/// The resume key is defined once (SweepConfig.keyDefinition); docs/resume-key.txt
/// is its copy for the merge script and the analysis (whose test holds Python to the
/// same file), so the three can never disagree on what one configuration is.
final class ResumeKeyFileTests: XCTestCase {
    func testTheKeyFileListsExactlyTheHarnessKey() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/resume-key.txt"), encoding: .utf8)
        let listed = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        XCTAssertEqual(listed, SweepConfig.keyColumns, "docs/resume-key.txt must list SweepConfig.keyColumns, in order")
        for column in SweepConfig.keyColumns { XCTAssertTrue(ResultsSchema.columns.contains(column), "\(column) is not a CSV column") }
    }

    /// Each key column tells configurations apart: changing the setting behind any one
    /// of them changes the key (the CLI test ResumeKeyTests checks the same through
    /// real runs).
    func testEveryRunWideSettingChangesTheKey() throws {
        var g = SweepSpec.Grid(); g.variants = [.mla]
        let c = try SweepSpec(grids: [g]).configurations(worldSize: 2)[0]
        var seeded = c; seeded.seed = 7
        var isolated = c; isolated.isolated = true
        var calibrated = c; calibrated.calibSource = "file:0123456789abcdef"
        var repeated = c; repeated.repeatIndex = 1
        XCTAssertEqual(Set([c.key, seeded.key, isolated.key, calibrated.key, repeated.key]).count, 5)
        XCTAssertEqual(Set([c.configID, seeded.configID, isolated.configID, calibrated.configID, repeated.configID]).count, 5)
        let wider = try SweepSpec(grids: [g]).configurations(worldSize: 4)[0]
        XCTAssertNotEqual(c.key, wider.key, "world size (and with it dp) is part of the key")
    }
}
