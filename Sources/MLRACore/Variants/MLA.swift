/// MLA (DeepSeek-V2/V3): one latent block serves every head. Under TP the latent
/// cannot be split, so every rank caches all of it and computes H/TP heads.
struct MLAScheme: LatentScheme {
    var name: VariantName { .mla }
    var blockCount: Int { 1 }
    var alpha: Float { 1 }
    func servedHeads(block: Int, nHead: Int) -> Range<Int> { 0..<nHead }
    func normName(block: Int) -> String { "kv_a_layernorm.weight" }
    var upProjection: UpProjectionLayout { .outputMajor(names: ["kv_b_proj.weight"]) }

    func plan(tp: Int, rank: Int, layout: LatentLayout) throws -> (blocks: [Int], heads: Range<Int>) {
        let heads = try layout.split(heads: 0..<layout.nHead, parts: tp, part: rank, tp: tp)
        return ([0], heads)
    }
}
