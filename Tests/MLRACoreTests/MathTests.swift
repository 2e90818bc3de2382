import MLRACore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class MathTests: XCTestCase {
    /// Half-split RoPE (not interleaved): pairs are (x[j], x[j + m/2]), f_j = 10000^(−2j/m), positions from 0.
    func testRoPEIsHalfSplitFromPositionZero() {
        let rope = RoPE(dim: 4)
        var x: [Float] = [1, 2, 3, 4]
        rope.apply(&x, position: 0)
        XCTAssertEqual(x, [1, 2, 3, 4], "position 0 must be the identity")

        x = [1, 2, 3, 4]
        rope.apply(&x, position: 1)
        // j = 0: θ = 1 on the pair (1, 3); j = 1: θ = 10000^(−1/2) = 0.01 on (2, 4).
        let expected: [Double] = [1 * cos(1.0) - 3 * sin(1.0), 2 * cos(0.01) - 4 * sin(0.01),
                                   1 * sin(1.0) + 3 * cos(1.0), 2 * sin(0.01) + 4 * cos(0.01)]
        for (a, b) in zip(x, expected) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }

        x = [1, 0, 0, 0]
        rope.apply(&x, position: 7)
        XCTAssertEqual(Double(x[2]), sin(7.0), accuracy: 1e-6, "x[0] rotates into x[m/2], not x[1]")
        XCTAssertEqual(x[1], 0)
    }

    func testRMSNormMatchesHandComputation() {
        var x: [Float] = [3, -4]
        let w: [Float] = [2, 0.5]
        // mean(x²) = 12.5; 1/sqrt(12.5 + 1e-6) = 0.28284270
        rmsNorm(&x, count: 2, weight: w, scale: 1)
        XCTAssertEqual(Double(x[0]), 3 * 2 / (12.5 + 1e-6).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(Double(x[1]), -4 * 0.5 / (12.5 + 1e-6).squareRoot(), accuracy: 1e-6)
        var y: [Float] = [1, 1, 1, 1]
        rmsNorm(&y, count: 4, weight: [1, 1, 1, 1], scale: 3)
        for v in y { XCTAssertEqual(Double(v), 3 / (1 + 1e-6).squareRoot(), accuracy: 1e-6) }
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(BFloat16(1.0).float, 1.0)
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        XCTAssertEqual(BFloat16(1 + 1.0 / 256).float, 1.0)
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        XCTAssertEqual(BFloat16(1 + 3.0 / 256).float, 1 + 1.0 / 64)
        XCTAssertTrue(BFloat16(Float.nan).float.isNaN)
        XCTAssertEqual(BFloat16(-Float.infinity).float, -Float.infinity)
    }

    func testSeededWeightsSliceEqualsFullTensor() {
        let s = SeededInit(seed: 3)
        let full = s.tensor("w", shape: [5, 7], kind: .linear(fanIn: 7))
        let box = s.tensor("w", shape: [5, 7], kind: .linear(fanIn: 7), ranges: [1..<4, 2..<6])
        XCTAssertEqual(box, full.slice([1..<4, 2..<6]))
        XCTAssertNotEqual(full, SeededInit(seed: 4).tensor("w", shape: [5, 7], kind: .linear(fanIn: 7)))
        XCTAssertTrue(full.data.allSatisfy { abs($0) <= 1 / Float(7).squareRoot() })
    }
}
