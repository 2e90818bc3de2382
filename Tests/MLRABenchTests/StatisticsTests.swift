import MLRABench
import XCTest

/// SampleStats against hand-computed linear-interpolation percentiles (exact in f64).
final class StatisticsTests: XCTestCase {
    func testPercentilesInterpolateLinearly() {
        let s = SampleStats([5, 1, 4, 2, 3])          // sorted 1 2 3 4 5
        XCTAssertEqual(s.median, 3); XCTAssertEqual(s.min, 1); XCTAssertEqual(s.max, 5); XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s.p10, 1.4, accuracy: 1e-12)    // rank 0.4
        XCTAssertEqual(s.p90, 4.6, accuracy: 1e-12)    // rank 3.6
        XCTAssertEqual(SampleStats([1, 2, 3, 10]).median, 2.5)
        let one = SampleStats([7])
        XCTAssertEqual([one.median, one.p10, one.p90, one.min, one.max], [7, 7, 7, 7, 7])
    }
}
