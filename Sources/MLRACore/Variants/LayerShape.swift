/// The shape settings the commands share (`plan`, `bench` and `sweep` flags, the sweep's
/// spec keys), and the one place they become an `AttentionConfig`: every command builds
/// a variant's layer from the same settings the same way.
///
/// Each family reads its own settings: the MLA family heads, head_dim (d_n), rope_dim,
/// kv_rank (d_c) and q_lora_rank; the GQA family heads, head_dim (d_h) and its KV heads.
public struct LayerShape: Equatable, Sendable {
    /// How the KV heads of the GQA family are given.
    public enum KVHeads: Equatable, Sendable {
        /// gqa's KV heads; mha and mqa have their own (h and 1) whatever this is, since
        /// a plan's or a sweep grid's kv_heads is a setting of gqa alone.
        case ofGQA(Int)
        /// The layer's KV heads for every grouped variant (nil: the variant's own, h for
        /// mha and gqa, 1 for mqa): one that contradicts mha or mqa is then refused by
        /// the layout, not ignored, as bench's --kv-heads names the layer it times.
        case exactly(Int?)
    }

    public var variant: VariantName
    public var heads: Int, headDim: Int, ropeDim: Int, kvRank: Int, qLoraRank: Int
    public var kvHeadsRule: KVHeads
    public var nEmbd: Int
    /// Model scope's sizes (nil for a layer).
    public var nLayer: Int?, intermediateSize: Int?, vocabSize: Int?

    public init(variant: VariantName, heads: Int, headDim: Int, ropeDim: Int, kvRank: Int, qLoraRank: Int, kvHeads: KVHeads,
                nEmbd: Int, nLayer: Int? = nil, intermediateSize: Int? = nil, vocabSize: Int? = nil) {
        self.variant = variant; self.heads = heads; self.headDim = headDim; self.ropeDim = ropeDim
        self.kvRank = kvRank; self.qLoraRank = qLoraRank; self.kvHeadsRule = kvHeads; self.nEmbd = nEmbd
        self.nLayer = nLayer; self.intermediateSize = intermediateSize; self.vocabSize = vocabSize
    }

    /// The layer's KV heads (0 for the MLA family, which caches latent blocks instead).
    public var kvHeads: Int { Self.kvHeads(of: variant, heads: heads, kvHeadsRule) }

    /// The KV heads of `variant` with `heads` query heads under `rule` (0 for the MLA family).
    public static func kvHeads(of variant: VariantName, heads: Int, _ rule: KVHeads) -> Int {
        guard !variant.isLatent else { return 0 }
        switch rule {
        case .ofGQA(let k): return variant == .mha ? heads : variant == .mqa ? 1 : k
        case .exactly(let k): return k ?? (variant == .mqa ? 1 : heads)
        }
    }

    /// Whether the KV heads split the query heads into equal groups (always true for the MLA family).
    public var kvHeadsDivideHeads: Bool { variant.isLatent || (kvHeads >= 1 && heads % kvHeads == 0) }

    /// The layer config (authors' keys). KV heads that do not divide the heads give
    /// group_size 0, which `layout()` refuses by name.
    public var config: AttentionConfig {
        if variant.isLatent {
            return AttentionConfig(variant: variant, nEmbd: nEmbd, nHead: heads, qLoraRank: qLoraRank, kvLoraRank: kvRank,
                                   qkNopeHeadDim: headDim, qkRopeHeadDim: ropeDim, nLayer: nLayer,
                                   intermediateSize: intermediateSize, vocabSize: vocabSize)
        }
        return AttentionConfig(variant: variant, nEmbd: nEmbd, nHead: heads, headDim: headDim,
                               groupSize: kvHeadsDivideHeads ? heads / kvHeads : 0,
                               nLayer: nLayer, intermediateSize: intermediateSize, vocabSize: vocabSize)
    }
}
