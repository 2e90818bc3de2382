import MLRACore
import MLRACuda
import MLRAParallel

/// Checks a configuration against an independent reference before it is timed
/// (STYLE: validate before timing). Every check returns the largest error and,
/// on the rank that compared, the first violation of the stated tolerance.
public struct ValidationResult {
    public var maxError: Double
    public var violation: String?
    /// The tolerance the check held the output to (nil where this rank compared nothing).
    public var tolerance: Tolerance? = nil
    /// The math the checked kernel's products ran in (CPU checks; what the row records).
    public var math: ProductMath = .f32
}

public enum Validation {
    /// Rows of context a kernel check covers: long enough for several tiles and
    /// thread splits, short enough for the plain kernel.
    static let kernelCheckLength = 1031

    /// Kernel scope: the timed kernel against the plain kernel on this rank's
    /// shard and dtype, over the first rows of a cache like the timed one.
    public static func kernel(layout: any AttentionLayout, shard: RankShard, dtype: StorageDType, context: Int,
                              kernel: AttentionKernel, injectError: Bool) -> ValidationResult {
        let groups = layout.kernelGroups(for: shard)
        let length = min(context, kernelCheckLength)
        let cache = KVCache(dtype: dtype, width: layout.cacheWidth(units: shard.units.count), capacity: length)
        fillRandom(cache, length: length, key: "validate")
        let q = SeededInit(seed: 0x5EED).tensor("q", shape: [groups.totalQueryCount], kind: .embedding).data
        var fast = [Float](repeating: 0, count: groups.totalOutputCount)
        var plain = fast
        kernel.run(cache: cache, length: length, groups: groups, scale: layout.softmaxScale, queries: q, out: &fast)
        PlainAttentionKernel().run(cache: cache, length: length, groups: groups, scale: layout.softmaxScale, queries: q, out: &plain)
        if injectError, !fast.isEmpty { fast[0] += 1 }
        let math = kernel.productMath(dtype: dtype, groups: groups)
        var result = compare(fast, plain.map(Double.init), Tolerance.kernelAgreement(math: math))
        result.math = math
        return result
    }

    /// Layer scope: the group's sharded layer (prefill 2 tokens, then 2 decode
    /// steps, all-reduced) against the Double reference forward on group rank 0.
    public static func layer(_ config: SweepConfig, shard: any AttentionShard, weights: WeightSource, group: Communicator,
                             kernel: AttentionKernel, injectError: Bool) throws -> ValidationResult {
        let layout = shard.layout
        let tokens = 4
        let x = layerCheckInput(layout, tokens: tokens)
        let cache = shard.makeCache(dtype: config.dtype, capacity: tokens)
        var y = runSequence(shard, x: x, tokens: tokens, prefill: 2, cache: cache, kernel: kernel, collectives: group)
        guard group.rank == 0 else { return ValidationResult(maxError: 0, violation: nil) }
        if injectError { y[0] += 1 }
        let ref = try ReferenceForward.run(layout, weights: weights, x: x.map(Double.init), tokens: tokens)
        let math = kernel.productMath(dtype: config.dtype, groups: shard.groups)
        var result = compare(y, ref, Tolerance.layerOutput(cache: config.dtype, math: math))
        result.math = math
        return result
    }

    /// The input rows of a layer check (CPU and GPU): seeded, the same on every rank.
    static func layerCheckInput(_ layout: any AttentionLayout, tokens: Int) -> [Float] {
        SeededInit(seed: 0x7E57).tensor("x", shape: [tokens, layout.nEmbd], kind: .embedding).data
    }

    /// Model scope: the group's sharded model against the same model in one
    /// process (t = 1) on group rank 0: logits after a 3-token prompt and one step.
    public static func model(_ config: SweepConfig, model: DecoderShard, weights: WeightSource, group: Communicator,
                             kernel: AttentionKernel, injectError: Bool) throws -> ValidationResult {
        func run(_ m: DecoderShard, _ collectives: TPCollectives) -> [Float] {
            let caches = m.makeCaches(dtype: config.dtype, capacity: 4)
            let first = m.forward(tokens: [GPUModelWorkload.checkPrompt], caches: [caches], kernel: kernel, collectives: collectives)
            return first + m.forward(tokens: [[argmax(first[...])]], caches: [caches], kernel: kernel, collectives: collectives)
        }
        var logits = run(model, group)
        guard group.rank == 0 else { return ValidationResult(maxError: 0, violation: nil) }
        if injectError { logits[0] += 1 }
        let single = try DecoderShard(layout: model.layout, tp: 1, rank: 0, weights: weights)
        let ref = run(single, SingleProcess())
        // The single-process model runs its groups unsplit: bf16 products there too where any layer's run them.
        let bf16 = { (m: DecoderShard) in m.attentionShards.contains { kernel.productMath(dtype: config.dtype, groups: $0.groups) == .bf16 } }
        let base = Tolerance.layerOutput(cache: config.dtype, math: bf16(model) || bf16(single) ? .bf16 : .f32)
        var result = compare(logits, ref.map(Double.init), modelTolerance(base, reference: ref))
        result.math = bf16(model) ? .bf16 : .f32
        return result
    }

    /// Logits against a reference model: a layer's tolerance, its absolute part scaled by
    /// the largest reference logit (at least 1), since logits are not of order 1.
    static func modelTolerance(_ layer: Tolerance, reference ref: [Float]) -> Tolerance {
        let scale = ref.map { abs(Double($0)) }.max() ?? 1
        return Tolerance(atol: layer.atol * max(scale, 1), rtol: layer.rtol)
    }

    static func compare(_ x: [Float], _ ref: [Double], _ tol: Tolerance) -> ValidationResult {
        let v = tol.firstViolation(x, ref)
        return ValidationResult(maxError: v?.maxError ?? Tolerance.maxError(x, ref),
                                violation: v.map { "\($0) with atol \(tol.atol), rtol \(tol.rtol)" }, tolerance: tol)
    }
}
