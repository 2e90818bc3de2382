/// MLA-family decode shard (method §3 absorbed decode, §4 plan).
///
/// Per rank: HR = its query heads, NU = its blocks, HK = heads of block k on this rank.
///   wDQ   [DQ, D]            replicated (small)        qNorm [DQ]
///   wUQ   [HR·(DN+DR), DQ]   column-parallel by head
///   wDKV  [NU·DL + DR, D]    the rank's block rows and the shared RoPE rows
///   norms [NU][DL]
///   up[k] [HK, 2, DN, DL]    per head: U^K then U^V (canonical, output-major)
///   wO    [D, HR·DN]         row-parallel: the rank's head columns; its all-reduce sums the ranks' outputs
final class LatentAttentionShard: AttentionShard {
    let latent: LatentLayout
    let shard: RankShard
    let groups: [KernelGroup]
    var layout: any AttentionLayout { latent }

    let wDQ: Tensor, qNorm: Tensor, wUQ: Tensor, wDKV: Tensor
    let wO: RowParallelLinear
    let norms: [Tensor]
    let up: [Tensor]
    let rope: RoPE

    var weightBytes: Int { bytes([wDQ, qNorm, wUQ, wDKV, wO.weight] + norms + up) }

    init(layout: LatentLayout, shard: RankShard, weights: WeightSource, prefix: String) throws {
        latent = layout
        self.shard = shard
        groups = layout.kernelGroups(for: shard)
        rope = RoPE(dim: layout.ropeDim)
        let specs = Dictionary(uniqueKeysWithValues: layout.parameters.map { ($0.name, $0.prefixed(prefix)) })
        let (dn, dr, dl, dc) = (layout.nopeDim, layout.ropeDim, layout.blockWidth, layout.kvLoraRank)
        let heads = shard.queryHeads

        wDQ = try weights.load(specs["q_a_proj.weight"]!)
        qNorm = try weights.load(specs["q_a_layernorm.weight"]!)
        wUQ = try weights.rows(specs["q_b_proj.weight"]!, (heads.lowerBound * (dn + dr))..<(heads.upperBound * (dn + dr)))
        let dkv = specs["kv_a_proj_with_mqa.weight"]!
        var dkvRows = [Float]()
        for b in shard.units { dkvRows += try weights.rows(dkv, (b * dl)..<((b + 1) * dl)).data }
        dkvRows += try weights.rows(dkv, dc..<(dc + dr)).data
        wDKV = Tensor(shape: [shard.units.count * dl + dr, layout.nEmbd], data: dkvRows)
        norms = try shard.units.map { try weights.load(specs[layout.scheme.normName(block: $0)]!) }
        up = try zip(shard.units, shard.unitHeads).map { b, heads in
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
        wO = RowParallelLinear(try weights.columns(specs["c_proj.weight"]!, (heads.lowerBound * dn)..<(heads.upperBound * dn)))
    }

    func forward(_ x: [Float], segments: [SequenceSegment], kernel: AttentionKernel, collectives: TPCollectives) -> [Float] {
        let L = latent
        let (d, dq, dn, dr, dl) = (L.nEmbd, L.qLoraRank, L.nopeDim, L.ropeDim, L.blockWidth)
        let hr = shard.queryHeads.count
        let batch = BatchRows(segments)
        let t = batch.count   // rows of the batch (T below)

        // Queries: cq = sqrt(D/DQ)·RMSNorm(x·wDQᵀ), q = cq·wUQᵀ  → [T, HR·(DN+DR)], RoPE on each q_rope.
        var cq = BLAS.linear(x, rows: t, wDQ)
        cq.withUnsafeMutableBufferPointer { p in
            qNorm.data.withUnsafeBufferPointer { w in
                for i in 0..<t { rmsNorm(p.baseAddress! + i * dq, count: dq, weight: w.baseAddress!, scale: (Float(d) / Float(dq)).squareRoot()) }
            }
        }
        var q = BLAS.linear(cq, rows: t, wUQ)
        q.withUnsafeMutableBufferPointer { p in
            for i in 0..<t { for h in 0..<hr { rope.apply(p.baseAddress! + i * hr * (dn + dr) + h * (dn + dr) + dn, position: batch.positions[i]) } }
        }

        // Cache rows: [c_b for held blocks | RoPE(k_rope)], c_b = sqrt(D/DL)·RMSNorm(block).
        var rows = BLAS.linear(x, rows: t, wDKV)
        let w = cacheWidth
        rows.withUnsafeMutableBufferPointer { p in
            for i in 0..<t {
                let row = p.baseAddress! + i * w
                for (k, n) in norms.enumerated() {
                    n.data.withUnsafeBufferPointer { rmsNorm(row + k * dl, count: dl, weight: $0.baseAddress!, scale: (Float(d) / Float(dl)).squareRoot()) }
                }
                rope.apply(row + norms.count * dl, position: batch.positions[i])
                batch.caches[i].append(row)
            }
        }

        // Absorbed queries per group: [q̃ = U^Kᵀ q_nope (DL) | q_rope (DR)] for each served head.
        let qStride = groups.totalQueryCount, zStride = groups.totalOutputCount
        let qkw = (dn + dr) * hr
        var qa = [Float](repeating: 0, count: t * qStride)
        var z = [Float](repeating: 0, count: t * zStride)
        var y = [Float](repeating: 0, count: t * hr * dn)
        q.withUnsafeBufferPointer { qp in
            qa.withUnsafeMutableBufferPointer { ap in
                forEachServedHead(columnsPerHead: dl + dr) { u, j, local, column in
                    let src = qp.baseAddress! + local * (dn + dr)
                    let dst = ap.baseAddress! + column
                    // [T, DN] · U^K [DN, DL] → [T, DL]
                    BLAS.gemmNN(src, u + j * 2 * dn * dl, dst, m: t, n: dl, k: dn,
                                lda: qkw, ldb: dl, ldc: qStride)
                    for i in 0..<t { (dst + i * qStride + dl).update(from: src + i * qkw + dn, count: dr) }
                }
            }
        }
        attend(batch, kernel: kernel, queries: qa, out: &z)

        // o = U^V z per branch, y_i = α Σ_b o_{b,i}; then out = y · wOᵀ, summed over the TP group.
        z.withUnsafeBufferPointer { zp in
            y.withUnsafeMutableBufferPointer { yp in
                forEachServedHead(columnsPerHead: dl) { u, j, local, column in
                    BLAS.gemmNT(zp.baseAddress! + column, u + (j * 2 + 1) * dn * dl,
                                yp.baseAddress! + local * dn, m: t, n: dn, k: dl,
                                lda: zStride, ldb: dl, ldc: hr * dn, alpha: L.alpha, accumulate: true)
                }
            }
        }
        return wO(y, rows: t, collectives: collectives)
    }

    /// Visits the served heads branch by branch (block k's heads in order) with the
    /// branch's up-projection U = up[k], the head's index j in the branch, its local
    /// query head, and its first column in a per-row layout of `columnsPerHead`
    /// columns per served head (the kernel's queries or outputs).
    private func forEachServedHead(columnsPerHead: Int,
                                   _ body: (_ up: UnsafePointer<Float>, _ j: Int, _ local: Int, _ column: Int) -> Void) {
        var off = 0
        for (k, heads) in shard.unitHeads.enumerated() {
            up[k].data.withUnsafeBufferPointer { u in
                for (j, h) in heads.enumerated() {
                    body(u.baseAddress!, j, h - shard.queryHeads.lowerBound, off + j * columnsPerHead)
                }
            }
            off += heads.count * columnsPerHead
        }
    }
}

/// [rows, cols] → [cols, rows].
func transpose(_ a: [Float], rows: Int, cols: Int) -> Tensor {
    var out = [Float](repeating: 0, count: a.count)
    for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = a[r * cols + c] } }
    return Tensor(shape: [cols, rows], data: out)
}

extension LatentLayout {
    public func makeShard(_ shard: RankShard, weights: WeightSource, prefix: String) throws -> AttentionShard {
        try LatentAttentionShard(layout: self, shard: shard, weights: weights, prefix: prefix)
    }
}
