/// MHA/GQA/MQA decode shard. Per rank: HR query heads, NU KV heads.
///   wQ  [HR·DH, D]   column-parallel by query head
///   wK  [NU·DH, D], wV [NU·DH, D]   the rank's KV heads (replicated when TP > NKV)
///   wO  [D, HR·DH]   row-parallel: its all-reduce sums the ranks' outputs
final class GroupedAttentionShard: AttentionShard {
    let grouped: GroupedLayout
    let shard: RankShard
    let groups: [KernelGroup]
    var layout: any AttentionLayout { grouped }
    let wQ: Tensor, wK: Tensor, wV: Tensor
    let wO: RowParallelLinear
    let rope: RoPE

    var weightBytes: Int { bytes([wQ, wK, wV, wO.weight]) }

    init(layout: GroupedLayout, shard: RankShard, weights: WeightSource, prefix: String) throws {
        grouped = layout
        self.shard = shard
        groups = layout.kernelGroups(for: shard)
        rope = RoPE(dim: layout.headDim)
        let specs = Dictionary(uniqueKeysWithValues: layout.parameters.map { ($0.name, $0.prefixed(prefix)) })
        let dh = layout.headDim
        let heads = shard.queryHeads
        let kv = (shard.units.first! * dh)..<((shard.units.last! + 1) * dh)
        wQ = try weights.rows(specs["c_q.weight"]!, (heads.lowerBound * dh)..<(heads.upperBound * dh))
        wK = try weights.rows(specs["c_k.weight"]!, kv)
        wV = try weights.rows(specs["c_v.weight"]!, kv)
        wO = RowParallelLinear(try weights.columns(specs["c_proj.weight"]!, (heads.lowerBound * dh)..<(heads.upperBound * dh)))
    }

    func forward(_ x: [Float], segments: [SequenceSegment], kernel: AttentionKernel, collectives: TPCollectives) -> [Float] {
        let dh = grouped.headDim
        let (hr, nu) = (shard.queryHeads.count, shard.units.count)
        let batch = BatchRows(segments)
        let t = batch.count
        var q = BLAS.linear(x, rows: t, wQ)   // [T, HR·DH]
        var k = BLAS.linear(x, rows: t, wK)   // [T, NU·DH]
        let v = BLAS.linear(x, rows: t, wV)   // [T, NU·DH]
        var row = [Float](repeating: 0, count: cacheWidth)
        q.withUnsafeMutableBufferPointer { qp in
            k.withUnsafeMutableBufferPointer { kp in
                for i in 0..<t {
                    for h in 0..<hr { rope.apply(qp.baseAddress! + (i * hr + h) * dh, position: batch.positions[i]) }
                    for u in 0..<nu {
                        let kh = kp.baseAddress! + (i * nu + u) * dh
                        rope.apply(kh, position: batch.positions[i])
                        for c in 0..<dh { row[2 * u * dh + c] = kh[c]; row[(2 * u + 1) * dh + c] = v[(i * nu + u) * dh + c] }
                    }
                    batch.caches[i].append(row)
                }
            }
        }
        // Groups cover the query heads in order, so q rows are the kernel's queries as they are.
        var y = [Float](repeating: 0, count: t * hr * dh)
        attend(batch, kernel: kernel, queries: q, out: &y)
        return wO(y, rows: t, collectives: collectives)
    }
}

extension GroupedLayout {
    public func makeShard(_ shard: RankShard, weights: WeightSource, prefix: String) throws -> AttentionShard {
        try GroupedAttentionShard(layout: self, shard: shard, weights: weights, prefix: prefix)
    }
}
