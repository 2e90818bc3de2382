import MLRABench
import MLRACore
import XCTest

/// The one prediction of a configuration's time (dry run and ETA) and the ETA's arithmetic.
final class SweepPredictionTests: XCTestCase {
    let cal = Calibration(threads: 1, readGBs: 10, triadGBs: 9, sgemmGFlops: 50, fmaGFlops: 20, fmaWidth: "avx2", blasCore: "test",
                          llcBytes: 1 << 20, arrayBytes: 4 << 20)

    func config(scope: String = "kernel") throws -> SweepConfig {
        var g = SweepSpec.Grid()
        g.variants = [.mla]; g.contexts = [1024]; g.heads = [4]; g.kvRanks = [64]; g.headDim = 16; g.ropeDim = 8
        g.nEmbd = 64; g.qLoraRank = 16; g.batch = [2]; g.dtypes = ["bf16"]; g.warmup = 3; g.steps = 7
        g.scopes = [Scope(rawValue: scope)!]
        return try SweepSpec(grids: [g]).configurations(worldSize: 1)[0]
    }

    /// The remaining predicted time scaled by elapsed over the predicted time done: a
    /// machine that took 3 × the prediction so far is expected to keep doing so.
    func testETAScalesThePredictedTimeLeftByTheRatioSoFar() {
        XCTAssertEqual(SweepPrediction.eta(elapsed: 21, predictedDone: 7, predictedLeft: 2, done: 20, left: 80), 6, accuracy: 1e-12)
        // Counting configurations where a prediction is missing (or nothing predicted is done yet).
        XCTAssertEqual(SweepPrediction.eta(elapsed: 21, predictedDone: 7, predictedLeft: nil, done: 3, left: 1), 7, accuracy: 1e-12)
        XCTAssertEqual(SweepPrediction.eta(elapsed: 21, predictedDone: 0, predictedLeft: 5, done: 3, left: 1), 7, accuracy: 1e-12)
        XCTAssertEqual(SweepPrediction.eta(elapsed: 21, predictedDone: nil, predictedLeft: nil, done: 0, left: 4), 0)
        XCTAssertEqual(SweepPrediction.eta(elapsed: 21, predictedDone: 7, predictedLeft: 0, done: 5, left: 0), 0)
    }

    /// Kernel scope: (warm-up + timed steps) × max(cache bytes / read bandwidth, FLOPs / peak).
    func testKernelScopeIsTheRooflineOfTheCacheTimesTheSteps() throws {
        let c = try config()
        let cost = try DecodeCost(c.attentionConfig.layout(), tp: 1, dtype: .bf16)
        let bytes = Double(cost.kvBytesPerToken * 1024 * 2), flops = Double(cost.kernelFlopsPerToken * 1024 * 2)
        let expected = max(bytes / 10e9, flops / 50e9) * 10
        XCTAssertEqual(try SweepPrediction.seconds(c, calibration: .cpu(cal)), expected, accuracy: expected * 1e-12)
        XCTAssertEqual(SweepPrediction.stepsRun(c), 10)
    }

    /// Layer scope adds the rank's weights (MemoryFootprint's), read once per step.
    func testLayerScopeAddsTheWeightsOfTheFootprint() throws {
        let c = try config(scope: "layer")
        let cost = try DecodeCost(c.attentionConfig.layout(), tp: 1, dtype: .bf16)
        let weights = Double(try c.footprint(backend: .cpu(lastLevelCacheBytes: 0)).weights)
        XCTAssertGreaterThan(weights, 0)
        let bytes = Double(cost.kvBytesPerToken * 1024 * 2) + weights
        let flops = Double(cost.kernelFlopsPerToken * 1024 * 2) + 2 * weights / 4 * 2
        let expected = max(bytes / 10e9, flops / 50e9) * 10
        XCTAssertEqual(try SweepPrediction.seconds(c, calibration: .cpu(cal)), expected, accuracy: expected * 1e-12)
    }
}
