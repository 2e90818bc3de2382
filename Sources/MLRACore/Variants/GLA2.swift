/// GLA-2: two latent blocks, block g serving head group g (heads g·H/2 ..< (g+1)·H/2).
/// TP ≥ 2: rank r holds block ⌊2r/TP⌋ and its share of that group's heads.
struct GLA2Scheme: LatentScheme {
    var name: VariantName { .gla2 }
    var blockCount: Int { 2 }
    var alpha: Float { 1 }
    func servedHeads(block: Int, nHead: Int) -> Range<Int> { (block * nHead / 2)..<((block + 1) * nHead / 2) }
    func normName(block: Int) -> String { "kv_a_layernorm_\(block + 1).weight" }
    var upProjection: UpProjectionLayout { .outputMajor(names: ["kv_b_proj_1.weight", "kv_b_proj_2.weight"]) }

    func plan(tp: Int, rank: Int, layout: LatentLayout) throws -> (blocks: [Int], heads: Range<Int>) {
        if tp == 1 { return ([0, 1], 0..<layout.nHead) }
        let block = rank * 2 / tp
        let perBlock = tp / 2
        let heads = try layout.split(heads: servedHeads(block: block, nHead: layout.nHead),
                                     parts: perBlock, part: rank % perBlock, tp: tp)
        return ([block], heads)
    }
}
