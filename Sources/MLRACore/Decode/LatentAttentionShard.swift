/// MLA-family decode shard (method §3 absorbed decode, §4 plan).
///
/// Per rank: HR = its query heads, NU = its blocks, HK = heads of block k on this rank.
///   wDQ   [DQ, D]            replicated (small)        qNorm [DQ]
///   wUQ   [HR·(DN+DR), DQ]   column-parallel by head
///   wDKV  [NU·DL + DR, D]    the rank's block rows and the shared RoPE rows
///   norms [NU][DL]
///   up[k] [HK, 2, DN, DL]    per head: U^K then U^V (canonical, output-major)
///   wO    [D, HR·DN]         row-parallel: the rank's head columns; its all-reduce sums the ranks' outputs
final class LatentAttentionShard<Backend: ComputeBackend>: BackendShard {
    let latent: LatentLayout
    let shard: RankShard
    let groups: [KernelGroup]
    var layout: any AttentionLayout { latent }

    let wDQ: Backend.Matrix, qNorm: Backend.Matrix, wUQ: Backend.Matrix, wDKV: Backend.Matrix
    let wO: RowParallelLinear<Backend>
    let norms: [Backend.Matrix]
    let up: [Backend.Matrix]
    let rope: RoPE
    let weightBytes: Int

    init(layout: LatentLayout, shard: RankShard, weights: WeightSource, prefix: String, on backend: Backend) throws {
        latent = layout
        self.shard = shard
        groups = layout.kernelGroups(for: shard)
        rope = RoPE(dim: layout.ropeDim)
        let specs = Dictionary(uniqueKeysWithValues: layout.parameters.map { ($0.name, $0.prefixed(prefix)) })
        let (dn, dr, dl, dc) = (layout.nopeDim, layout.ropeDim, layout.blockWidth, layout.kvLoraRank)
        let heads = shard.queryHeads

        let wDQ = try weights.load(specs["q_a_proj.weight"]!)
        let qNorm = try weights.load(specs["q_a_layernorm.weight"]!)
        let wUQ = try weights.rows(specs["q_b_proj.weight"]!, (heads.lowerBound * (dn + dr))..<(heads.upperBound * (dn + dr)))
        let dkv = specs["kv_a_proj_with_mqa.weight"]!
        var dkvRows = [Float]()
        for b in shard.units { dkvRows += try weights.rows(dkv, (b * dl)..<((b + 1) * dl)).data }
        dkvRows += try weights.rows(dkv, dc..<(dc + dr)).data
        let wDKV = Tensor(shape: [shard.units.count * dl + dr, layout.nEmbd], data: dkvRows)
        let norms = try shard.units.map { try weights.load(specs[layout.scheme.normName(block: $0)]!) }
        let up = try zip(shard.units, shard.unitHeads).map { b, heads in
            // Local head j of block b owns up-projection outputs [j·2·DN, (j+1)·2·DN).
            let first = heads.lowerBound - layout.servedHeads(block: b).lowerBound
            let cols = (first * 2 * dn)..<((first + heads.count) * 2 * dn)
            switch layout.scheme.upProjection {
            case .outputMajor(let names):
                return try weights.rows(specs[names[b]]!, cols)
            case .inputMajorStacked(let name):
                let t = try weights.load(specs[name]!, ranges: [b..<(b + 1), 0..<dl, cols])  // [1, DL, HK·2·DN]
                return transpose(t.data, rows: dl, cols: cols.count)                       // [HK·2·DN, DL]
            }
        }
        let wO = try weights.columns(specs["c_proj.weight"]!, (heads.lowerBound * dn)..<(heads.upperBound * dn))
        weightBytes = bytes([wDQ, qNorm, wUQ, wDKV, wO] + norms + up)
        (self.wDQ, self.qNorm, self.wUQ, self.wDKV) = (backend.matrix(wDQ), backend.matrix(qNorm), backend.matrix(wUQ), backend.matrix(wDKV))
        self.norms = norms.map(backend.matrix)
        self.up = up.map(backend.matrix)
        self.wO = RowParallelLinear(backend.matrix(wO))
    }

    func forward(_ x: Backend.Buffer, rows batch: BatchRows<Backend.Cache>, on b: Backend, attention: Backend.Attention,
                 collectives: TPCollectives) -> Backend.Buffer {
        let L = latent
        let (d, dq, dn, dr, dl) = (L.nEmbd, L.qLoraRank, L.nopeDim, L.ropeDim, L.blockWidth)
        let hr = shard.queryHeads.count
        let t = batch.count   // rows of the batch (T below)

        // Queries: cq = sqrt(D/DQ)·RMSNorm(x·wDQᵀ), q = cq·wUQᵀ  → [T, HR·(DN+DR)], RoPE on each q_rope.
        var cq = b.linear(x, rows: t, wDQ)
        b.rmsNorm(&cq, rows: t, stride: dq, offset: 0, count: dq, weight: qNorm, scale: (Float(d) / Float(dq)).squareRoot())
        var q = b.linear(cq, rows: t, wUQ)
        let qkw = (dn + dr) * hr
        b.rope(&q, rows: t, Strided(offset: dn, ld: qkw, step: dn + dr), blocks: hr, positions: batch.positions, rope)

        // Cache rows: [c_b for held blocks | RoPE(k_rope)], c_b = sqrt(D/DL)·RMSNorm(block).
        let w = cacheWidth
        var rows = b.linear(x, rows: t, wDKV)
        for (k, n) in norms.enumerated() {
            b.rmsNorm(&rows, rows: t, stride: w, offset: k * dl, count: dl, weight: n, scale: (Float(d) / Float(dl)).squareRoot())
        }
        b.rope(&rows, rows: t, Strided(offset: norms.count * dl, ld: w), blocks: 1, positions: batch.positions, rope)
        b.append(rows, to: batch.caches)

        // Absorbed queries per group, a branch at a time: [q̃ = U^Kᵀ q_nope (DL) | q_rope (DR)] for
        // each served head; head j of branch k multiplies by U^K = up[k] rows j·2·DN ..< +DN.
        let qStride = groups.totalQueryCount, zStride = groups.totalOutputCount
        var qa = b.zeros(t * qStride)
        var column = 0
        for (k, heads) in shard.unitHeads.enumerated() {
            let first = (heads.lowerBound - shard.queryHeads.lowerBound) * (dn + dr)
            b.gemm(q, Strided(offset: first, ld: qkw, step: dn + dr), up[k], Strided(ld: dl, step: 2 * dn * dl), transposeB: false,
                   into: &qa, Strided(offset: column, ld: qStride, step: dl + dr), m: t, n: dl, k: dn, batch: heads.count,
                   alpha: 1, accumulate: false)
            b.copy(q, Strided(offset: first + dn, ld: qkw, step: dn + dr), into: &qa, Strided(offset: column + dl, ld: qStride, step: dl + dr),
                   rows: t, blocks: heads.count, width: dr)
            column += heads.count * (dl + dr)
        }
        let z = b.attend(qa, caches: batch.caches, lengths: batch.lengths, groups: groups, scale: layout.softmaxScale, attention)

        // o = U^V z per branch (U^V = up[k] rows (2j+1)·DN ..< +DN), y_i = α Σ_b o_{b,i}; then
        // out = y · wOᵀ, summed over the TP group.
        var y = b.zeros(t * hr * dn)
        column = 0
        for (k, heads) in shard.unitHeads.enumerated() {
            let first = (heads.lowerBound - shard.queryHeads.lowerBound) * dn
            b.gemm(z, Strided(offset: column, ld: zStride, step: dl), up[k], Strided(offset: dn * dl, ld: dl, step: 2 * dn * dl),
                   transposeB: true, into: &y, Strided(offset: first, ld: hr * dn, step: dn), m: t, n: dn, k: dl, batch: heads.count,
                   alpha: L.alpha, accumulate: true)
            column += heads.count * dl
        }
        return wO(y, rows: t, on: b, collectives: collectives)
    }
}

extension LatentAttentionShard: AttentionShard where Backend == CPUBackend {}

/// [rows, cols] → [cols, rows].
func transpose(_ a: [Float], rows: Int, cols: Int) -> Tensor {
    var out = [Float](repeating: 0, count: a.count)
    for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = a[r * cols + c] } }
    return Tensor(shape: [cols, rows], data: out)
}

extension LatentLayout {
    public func makeShard(_ shard: RankShard, weights: WeightSource, prefix: String) throws -> any AttentionShard {
        try LatentAttentionShard(layout: self, shard: shard, weights: weights, prefix: prefix, on: CPUBackend())
    }

    public func makeShard<B: ComputeBackend>(_ shard: RankShard, weights: WeightSource, prefix: String,
                                             on backend: B) throws -> any BackendShard<B> {
        try LatentAttentionShard(layout: self, shard: shard, weights: weights, prefix: prefix, on: backend)
    }
}
