/// MLRA-4: four latent blocks, each with its own branch for every head; α = 1/2.
/// TP ≤ 4: rank r holds blocks r·4/TP ..< (r+1)·4/TP for all heads.
/// TP > 4: rank r holds block r mod 4 and head group ⌊r/4⌋ of TP/4 groups.
struct MLRA4Scheme: LatentScheme {
    var name: VariantName { .mlra4 }
    var blockCount: Int { 4 }
    var alpha: Float { 0.5 }
    func servedHeads(block: Int, nHead: Int) -> Range<Int> { 0..<nHead }
    func normName(block: Int) -> String { "kv_a_layernorms.\(block).weight" }
    var upProjection: UpProjectionLayout { .inputMajorStacked(name: "kv_b_proj") }

    func plan(tp: Int, rank: Int, layout: LatentLayout) throws -> (blocks: [Int], heads: Range<Int>) {
        if tp <= 4 { return (Array((rank * 4 / tp)..<((rank + 1) * 4 / tp)), 0..<layout.nHead) }
        let heads = try layout.split(heads: 0..<layout.nHead, parts: tp / 4, part: rank / 4, tp: tp)
        return ([rank % 4], heads)
    }
}
