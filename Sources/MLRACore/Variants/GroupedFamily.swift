/// MHA, GQA and MQA (method §3): H query heads of width DH share NKV = H / group_size
/// KV heads; query head i reads KV head ⌊i / group_size⌋. RoPE on the full DH.
///
/// TP plan (method §4): rank r computes query heads r·H/TP ..< (r+1)·H/TP and holds
/// NKV/TP KV heads when TP ≤ NKV, else KV head ⌊r·NKV/TP⌋ (replicated TP/NKV times).
public struct GroupedLayout: AttentionLayout {
    public let variant: VariantName
    public let nEmbd: Int, nHead: Int, headDim: Int, groupSize: Int
    public var kvHeads: Int { nHead / groupSize }
    public var valueHeadDim: Int { headDim }
    public var unitCount: Int { kvHeads }
    public var softmaxScale: Float { 1 / Float(headDim).squareRoot() }

    init(config c: AttentionConfig) throws {
        variant = c.variant; nEmbd = c.nEmbd; nHead = c.nHead
        headDim = try c.required(c.headDim, "head_dim")
        guard headDim % 2 == 0 else { throw HarnessError("head_dim must be even for half-split RoPE, got \(headDim)") }
        let implied: Int? = switch c.variant { case .mha: 1; case .mqa: c.nHead; default: nil }
        let g = c.groupSize ?? implied
        guard let g else { throw HarnessError("config for gqa needs 'group_size'") }
        try requirePositive(g, "group_size")
        if let implied, g != implied {
            throw HarnessError("\(c.variant.rawValue) needs group_size \(implied) (n_head \(c.nHead)), got \(g)")
        }
        groupSize = g
        _ = try divide(nHead, g, "n_head must be divisible by group_size")
    }

    public var parameters: [ParamSpec] {
        let d = nEmbd
        return [
            ParamSpec("c_q.weight", [nHead * headDim, d], .linear(fanIn: d)),
            ParamSpec("c_k.weight", [kvHeads * headDim, d], .linear(fanIn: d)),
            ParamSpec("c_v.weight", [kvHeads * headDim, d], .linear(fanIn: d)),
            ParamSpec("c_proj.weight", [d, nHead * headDim], .linear(fanIn: nHead * headDim)),
        ]
    }

    public func shard(tp: Int, rank: Int) throws -> RankShard {
        try checkTP(tp, powerOfTwo: false)
        let heads = try split(heads: 0..<nHead, parts: tp, part: rank, tp: tp)
        let units: [Int]
        if tp <= kvHeads {
            guard kvHeads % tp == 0 else {
                throw HarnessError("\(variant.rawValue) cannot run at TP degree \(tp): \(kvHeads) KV heads are not divisible by \(tp)")
            }
            units = Array((rank * kvHeads / tp)..<((rank + 1) * kvHeads / tp))
        } else {
            guard tp % kvHeads == 0 else {
                throw HarnessError("\(variant.rawValue) cannot run at TP degree \(tp): \(tp) is not a multiple of its \(kvHeads) KV heads")
            }
            units = [rank * kvHeads / tp]
        }
        let unitHeads = units.map { (($0 * groupSize)..<(($0 + 1) * groupSize)).clamped(to: heads) }
        return RankShard(tp: tp, rank: rank, queryHeads: heads, units: units, unitHeads: unitHeads)
    }

    /// Per token: K and V (DH each) of every held KV head, laid [k0 | v0 | k1 | v1 …].
    public func cacheWidth(units: Int) -> Int { units * 2 * headDim }

    /// Per query head: 2·DH for q·k and 2·DH for p·v per cached token.
    public var kernelFlopsPerTokenPerBranch: Int { 4 * headDim }
}

extension GroupedLayout {
    /// One kernel group per held KV head: the query heads that read it.
    public func kernelGroups(for shard: RankShard) -> [KernelGroup] {
        shard.unitHeads.enumerated().map { k, heads in
            KernelGroup(heads: heads.count, keyOffset: 2 * k * headDim, keyWidth: headDim,
                        valueOffset: (2 * k + 1) * headDim, valueWidth: headDim)
        }
    }
}
