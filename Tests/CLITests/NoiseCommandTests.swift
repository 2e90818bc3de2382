import Foundation
import XCTest

/// `mlra noise` as a user runs it: alone, under mpirun (every rank probed, the report on
/// rank 0), and with bad input.
final class NoiseCommandTests: XCTestCase {
    func testUnderMpirunEveryRankIsProbedAndTheReportIsWritten() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("noise-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("noise.json").path
        let r = try CLI.mpirun(2, ["noise", "--noise-budget", "0.3", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 rank(s) on 1 node(s), 3000 quanta of 100 µs"), r.stdout)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.hasPrefix("0 ") || $0.hasPrefix("1 ") }.count, 2, r.stdout)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        let ranks = json["ranks"] as! [[String: Any]]
        XCTAssertEqual(ranks.map { $0["rank"] as! Int }, [0, 1])
        let summary = ranks[0]["summary"] as! [String: Any]
        XCTAssertEqual(summary["quanta"] as? Int, 3000)
        XCTAssertEqual((summary["spectrum_hz"] as! [Double]).count, (summary["spectrum_amplitude"] as! [Double]).count)
        XCTAssertNotNil(summary["lost_fraction"] as? Double)
    }

    func testBadSettingsAreOneLine() throws {
        for args in [["--quantum-us", "1"], ["--noise-budget", "0"], ["--noise-budget", "0.005", "--quantum-us", "1000"]] {
            let r = try CLI.run(["noise"] + args)
            XCTAssertEqual(r.status, 64, "\(args) \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("mlra: error: the noise probe"), r.stderr)
        }
        let r = try CLI.run(["noise", "--noise-budget", "0.2", "--out", "/nonexistent-dir/x.json"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
    }
}
