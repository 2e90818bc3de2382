import Foundation
import MLRABench
import XCTest

/// Only sanity bounds (no timing thresholds): figures positive and finite, JSON round-trips.
final class CalibrationTests: XCTestCase {
    func testQuickCalibrationIsSaneAndRoundTrips() throws {
        let c = try Calibration.measure(threads: 1, quick: true)
        for v in [c.readGBs, c.triadGBs, c.sgemmGFlops, c.fmaGFlops] { XCTAssert(v.isFinite && v > 0, "\(c)") }
        XCTAssertGreaterThanOrEqual(c.arrayBytes, 4 * c.llcBytes - (1 << 12))
        XCTAssertEqual(try JSONDecoder().decode(Calibration.self, from: JSONEncoder().encode(c)), c)
        XCTAssertEqual(c.rooflineSeconds(bytes: c.bandwidthGBs * 1e9, flops: 0), 1, accuracy: 1e-12)
    }
}
