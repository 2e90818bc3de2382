import MLRACore
import XCTest

/// |x − ref| ≤ atol + rtol·|ref| elementwise; reports the worst element.
public func assertClose(_ x: [Float], _ ref: [Double], atol: Double, rtol: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(x.count, ref.count, "\(what): lengths differ", file: file, line: line)
    var worst = (excess: 0.0, index: -1)
    for i in 0..<min(x.count, ref.count) {
        let err = abs(Double(x[i]) - ref[i]) - (atol + rtol * abs(ref[i]))
        if err > worst.excess { worst = (err, i) }
    }
    if worst.index >= 0 {
        let i = worst.index
        XCTFail("\(what): element \(i) is \(x[i]), reference \(ref[i]) (atol \(atol), rtol \(rtol))", file: file, line: line)
    }
}

public func randomInput(tokens: Int, width: Int, seed: UInt64) -> [Float] {
    SeededInit(seed: seed).tensor("x", shape: [tokens, width], kind: .embedding).data
}

public func assertClose(_ x: [Float], _ ref: [Double], _ tol: Tolerance, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    assertClose(x, ref, atol: tol.atol, rtol: tol.rtol, what, file: file, line: line)
}
