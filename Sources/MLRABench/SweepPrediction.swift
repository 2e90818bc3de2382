import MLRACore
import MLRACuda

/// What a sweep configuration is predicted to cost, before it runs: the one place
/// both `mlra sweep --dry-run` and the progress line's ETA take it from.
///
/// A step's time is the roofline of what the busiest rank streams and computes in it:
/// max(bytes / read bandwidth, FLOPs / compute peak) of the row's calibration
/// (`RowCalibration`), where the bytes are the kernel's cache reads (DecodeCost) plus,
/// in layer and model scope, the rank's weights read once per step (MemoryFootprint's
/// `weights`, the one footprint model), and the FLOPs the kernel's plus 2 per weight
/// element per sequence. A configuration's time is that step × its warm-up and timed
/// steps × the turns its timing mode takes (isolated: every world rank in turn).
/// Not included: validation, allocation and the collectives (a decode step at these
/// sizes is bound by its streams; the ETA's measured ratio absorbs the rest).
public enum SweepPrediction {
    /// Seconds of one step of `c` on its busiest rank, held to `calibration`.
    /// `footprint`: c's (the weights it streams); nil computes it on the CPU backend.
    public static func stepSeconds(_ c: SweepConfig, calibration: RowCalibration, footprint: MemoryFootprint? = nil) throws -> Double {
        let cost = try DecodeCost(c.attentionConfig.layout(), tp: c.tp, dtype: c.dtype)
        let seqs = c.isDeviceShare ? c.batch : c.sequencesPerReplica
        var weightBytes = 0
        if c.scope != .kernel { weightBytes = try (footprint ?? c.footprint(backend: .cpu(lastLevelCacheBytes: 0))).weights }
        let bytes = Double(try cost.kernelBytes(context: c.context, sequences: seqs, layers: c.nLayer)) + Double(weightBytes)
        let flops = Double(try cost.kernelFlops(context: c.context, sequences: seqs, layers: c.nLayer))
            + 2 * Double(weightBytes / 4) * Double(seqs)
        switch calibration {
        case .cpu(let cal): return cal.rooflineSeconds(bytes: bytes, flops: flops)
        case .gpu(let cal): return cal.rooflineSeconds(bytes: bytes, flops: flops, cache: c.dtype)
        }
    }

    /// Steps the timing protocol runs for one measurement of `c` (warm-up and timed),
    /// counted in step times of one rank: isolated timing runs the world's ranks one
    /// after another (`TimingProtocol.inTurn`); device-share and concurrent timing once.
    public static func stepsRun(_ c: SweepConfig) -> Int {
        (c.warmup + c.steps) * (c.timingMode == .isolated ? c.worldSize : 1)
    }

    /// Seconds of one measurement of `c` (one repeat).
    public static func seconds(_ c: SweepConfig, calibration: RowCalibration, footprint: MemoryFootprint? = nil) throws -> Double {
        try stepSeconds(c, calibration: calibration, footprint: footprint) * Double(stepsRun(c))
    }

    /// Seconds left of a sweep in progress. With predictions, the remaining predicted
    /// time scaled by how this machine has done so far against its predictions
    /// (`elapsed` / `predictedDone`): the roofline is a bound, and the measured ratio
    /// carries what it leaves out (validation, allocation, the kernel's distance from
    /// the roof). Without (`predictedDone` nil or 0, or `predictedLeft` nil), by counting
    /// configurations: elapsed / done × left.
    public static func eta(elapsed: Double, predictedDone: Double?, predictedLeft: Double?, done: Int, left: Int) -> Double {
        if let predictedDone, let predictedLeft, predictedDone > 0, predictedDone.isFinite, predictedLeft.isFinite {
            return elapsed / predictedDone * predictedLeft
        }
        return done > 0 ? elapsed / Double(done) * Double(left) : 0
    }
}
