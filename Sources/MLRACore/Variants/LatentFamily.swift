/// The MLA family (MLA, GLA-2, MLRA-2, MLRA-4), method §3.
///
/// Dimension letters used throughout: D = n_embd, H = n_head, DQ = q_lora_rank,
/// DC = kv_lora_rank, DN = qk_nope_head_dim (= value head dim), DR = qk_rope_head_dim,
/// NB = latent blocks, DL = DC / NB (block width).
///
/// A variant is a `LatentScheme`: how many blocks, which heads each block
/// serves, the output scale α, where its norm and up-projection weights live
/// in a checkpoint, and its tensor-parallel plan. Everything else is shared.
public protocol LatentScheme: Sendable {
    var name: VariantName { get }
    var blockCount: Int { get }
    /// Heads of block b's branches (contiguous), for a layer of `nHead` heads.
    func servedHeads(block: Int, nHead: Int) -> Range<Int>
    /// α in y_i = α Σ_b o_{b,i}.
    var alpha: Float { get }
    func normName(block: Int) -> String
    var upProjection: UpProjectionLayout { get }
    /// (blocks held, query heads computed) for rank `rank` of `tp` (method §4).
    func plan(tp: Int, rank: Int, layout: LatentLayout) throws -> (blocks: [Int], heads: Range<Int>)
}

/// Where a block's up-projection [K | V per head] lives in a checkpoint.
public enum UpProjectionLayout: Sendable {
    /// One PyTorch Linear per block, [heads·2·DN, DL] (output-major); names per block.
    case outputMajor(names: [String])
    /// One stacked parameter [NB, DL, heads·2·DN] (input-major).
    case inputMajorStacked(name: String)
}

public struct LatentLayout: AttentionLayout {
    public let scheme: any LatentScheme
    public let nEmbd: Int, nHead: Int
    public let qLoraRank: Int, kvLoraRank: Int, nopeDim: Int, ropeDim: Int
    public let blockWidth: Int

    public var variant: VariantName { scheme.name }
    public var valueHeadDim: Int { nopeDim }
    public var unitCount: Int { scheme.blockCount }
    /// τ = 1/sqrt(DN + DR): the scale of the un-absorbed attention, never 1/sqrt(DL + DR).
    public var softmaxScale: Float { 1 / Float(nopeDim + ropeDim).squareRoot() }
    public var alpha: Float { scheme.alpha }

    init(config c: AttentionConfig) throws {
        scheme = latentScheme(c.variant)
        nEmbd = c.nEmbd; nHead = c.nHead
        qLoraRank = try c.required(c.qLoraRank, "q_lora_rank")
        kvLoraRank = try c.required(c.kvLoraRank, "kv_lora_rank")
        nopeDim = try c.required(c.qkNopeHeadDim, "qk_nope_head_dim")
        ropeDim = try c.required(c.qkRopeHeadDim, "qk_rope_head_dim")
        guard ropeDim % 2 == 0 else { throw HarnessError("qk_rope_head_dim must be even for half-split RoPE, got \(ropeDim)") }
        blockWidth = try divide(kvLoraRank, scheme.blockCount,
                                "\(c.variant.rawValue) splits kv_lora_rank into \(scheme.blockCount) blocks")
        if scheme.blockCount > 1 && c.variant != .mlra4 {
            _ = try divide(nHead, 2, "\(c.variant.rawValue) splits n_head into 2 head groups")
        }
    }

    public func servedHeads(block: Int) -> Range<Int> { scheme.servedHeads(block: block, nHead: nHead) }

    public var parameters: [ParamSpec] {
        let (d, h) = (nEmbd, nHead)
        var p: [ParamSpec] = [
            ParamSpec("q_a_proj.weight", [qLoraRank, d], .linear(fanIn: d)),
            ParamSpec("q_a_layernorm.weight", [qLoraRank], .norm),
            ParamSpec("q_b_proj.weight", [h * (nopeDim + ropeDim), qLoraRank], .linear(fanIn: qLoraRank)),
            ParamSpec("kv_a_proj_with_mqa.weight", [kvLoraRank + ropeDim, d], .linear(fanIn: d)),
        ]
        for b in 0..<scheme.blockCount { p.append(ParamSpec(scheme.normName(block: b), [blockWidth], .norm)) }
        let perBlockOut = servedHeads(block: 0).count * 2 * nopeDim
        switch scheme.upProjection {
        case .outputMajor(let names):
            for n in names { p.append(ParamSpec(n, [perBlockOut, blockWidth], .linear(fanIn: blockWidth))) }
        case .inputMajorStacked(let name):
            p.append(ParamSpec(name, [scheme.blockCount, blockWidth, perBlockOut], .linear(fanIn: blockWidth)))
        }
        p.append(ParamSpec("c_proj.weight", [d, h * nopeDim], .linear(fanIn: h * nopeDim)))
        return p
    }

    public func shard(tp: Int, rank: Int) throws -> RankShard {
        try checkTP(tp, powerOfTwo: variant != .mla)
        precondition(rank >= 0 && rank < tp)
        let (blocks, heads) = try scheme.plan(tp: tp, rank: rank, layout: self)
        let unitHeads = blocks.map { servedHeads(block: $0).clamped(to: heads) }
        return RankShard(tp: tp, rank: rank, queryHeads: heads, units: blocks, unitHeads: unitHeads)
    }

    /// Per token: the held blocks (DL each) and one shared rotated RoPE key (DR).
    public func cacheWidth(units: Int) -> Int { units * blockWidth + ropeDim }

    /// Scores 2·(DL + DR) plus values 2·DL per cached token and branch.
    public var kernelFlopsPerTokenPerBranch: Int { 2 * (blockWidth + ropeDim) + 2 * blockWidth }
}

func latentScheme(_ v: VariantName) -> any LatentScheme {
    switch v {
    case .mla: MLAScheme()
    case .gla2: GLA2Scheme()
    case .mlra2: MLRA2Scheme()
    case .mlra4: MLRA4Scheme()
    default: preconditionFailure("\(v) is not in the MLA family")
    }
}

extension LatentLayout {
    /// One kernel group per held block: its served heads read [c_b | k_rope] as key
    /// and c_b as value (absorbed decode, method §3).
    public func kernelGroups(for shard: RankShard) -> [KernelGroup] {
        let rope = shard.units.count * blockWidth
        return shard.unitHeads.enumerated().map { k, heads in
            KernelGroup(heads: heads.count, keyOffset: k * blockWidth, keyWidth: blockWidth,
                        ropeOffset: rope, ropeWidth: ropeDim, valueOffset: k * blockWidth, valueWidth: blockWidth)
        }
    }
}
