/// MLRA-2: four latent blocks; block b serves head group b mod 2 (H/2 heads),
/// so each head sums two branches (blocks g and g+2); α = 1/√2.
/// TP = 2: rank r holds blocks {r, r+2} (group r). TP = 4: block r (group r mod 2).
/// TP > 4: block r mod 4, its group split further into TP/4 parts.
struct MLRA2Scheme: LatentScheme {
    var name: VariantName { .mlra2 }
    var blockCount: Int { 4 }
    var alpha: Float { 1 / Float(2).squareRoot() }
    func servedHeads(block: Int, nHead: Int) -> Range<Int> {
        let g = block % 2
        return (g * nHead / 2)..<((g + 1) * nHead / 2)
    }
    func normName(block: Int) -> String { "kv_a_layernorms.\(block).weight" }
    var upProjection: UpProjectionLayout { .inputMajorStacked(name: "kv_b_proj") }

    func plan(tp: Int, rank: Int, layout: LatentLayout) throws -> (blocks: [Int], heads: Range<Int>) {
        let h = layout.nHead
        switch tp {
        case 1: return ([0, 1, 2, 3], 0..<h)
        case 2: return ([rank, rank + 2], servedHeads(block: rank, nHead: h))
        case 4: return ([rank], servedHeads(block: rank, nHead: h))
        default:
            let block = rank % 4
            let heads = try layout.split(heads: servedHeads(block: block, nHead: h), parts: tp / 4, part: rank / 4, tp: tp)
            return ([block], heads)
        }
    }
}
