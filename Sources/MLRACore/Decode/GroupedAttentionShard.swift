/// MHA/GQA/MQA decode shard. Per rank: HR query heads, NU KV heads.
///   wQ  [HR·DH, D]   column-parallel by query head
///   wK  [NU·DH, D], wV [NU·DH, D]   the rank's KV heads (replicated when TP > NKV)
///   wO  [D, HR·DH]   row-parallel: its all-reduce sums the ranks' outputs
final class GroupedAttentionShard<Backend: ComputeBackend>: BackendShard {
    let grouped: GroupedLayout
    let shard: RankShard
    let groups: [KernelGroup]
    var layout: any AttentionLayout { grouped }
    let wQ: Backend.Matrix, wK: Backend.Matrix, wV: Backend.Matrix
    let wO: RowParallelLinear<Backend>
    let rope: RoPE
    let weightBytes: Int

    init(layout: GroupedLayout, shard: RankShard, weights: WeightSource, prefix: String, on backend: Backend) throws {
        grouped = layout
        self.shard = shard
        groups = layout.kernelGroups(for: shard)
        rope = RoPE(dim: layout.headDim)
        let specs = Dictionary(uniqueKeysWithValues: layout.parameters.map { ($0.name, $0.prefixed(prefix)) })
        let dh = layout.headDim
        let heads = shard.queryHeads
        let kv = (shard.units.first! * dh)..<((shard.units.last! + 1) * dh)
        let wQ = try weights.rows(specs["c_q.weight"]!, (heads.lowerBound * dh)..<(heads.upperBound * dh))
        let wK = try weights.rows(specs["c_k.weight"]!, kv)
        let wV = try weights.rows(specs["c_v.weight"]!, kv)
        let wO = try weights.columns(specs["c_proj.weight"]!, (heads.lowerBound * dh)..<(heads.upperBound * dh))
        weightBytes = bytes([wQ, wK, wV, wO])
        (self.wQ, self.wK, self.wV) = (backend.matrix(wQ), backend.matrix(wK), backend.matrix(wV))
        self.wO = RowParallelLinear(backend.matrix(wO))
    }

    func forward(_ x: Backend.Buffer, rows batch: BatchRows<Backend.Cache>, on b: Backend, attention: Backend.Attention,
                 collectives: TPCollectives) -> Backend.Buffer {
        let dh = grouped.headDim
        let (hr, nu) = (shard.queryHeads.count, shard.units.count)
        let t = batch.count
        var q = b.linear(x, rows: t, wQ)   // [T, HR·DH]
        var k = b.linear(x, rows: t, wK)   // [T, NU·DH]
        let v = b.linear(x, rows: t, wV)   // [T, NU·DH]
        b.rope(&q, rows: t, Strided(ld: hr * dh, step: dh), blocks: hr, positions: batch.positions, rope)
        b.rope(&k, rows: t, Strided(ld: nu * dh, step: dh), blocks: nu, positions: batch.positions, rope)
        // Cache rows: [K_u | V_u] for each of the rank's KV heads u.
        let w = cacheWidth
        var rows = b.zeros(t * w)
        b.copy(k, Strided(ld: nu * dh, step: dh), into: &rows, Strided(ld: w, step: 2 * dh), rows: t, blocks: nu, width: dh)
        b.copy(v, Strided(ld: nu * dh, step: dh), into: &rows, Strided(offset: dh, ld: w, step: 2 * dh), rows: t, blocks: nu, width: dh)
        b.append(rows, to: batch.caches)
        // Groups cover the query heads in order, so q rows are the kernel's queries as they are.
        let y = b.attend(q, caches: batch.caches, lengths: batch.lengths, groups: groups, scale: layout.softmaxScale, attention)
        return wO(y, rows: t, on: b, collectives: collectives)
    }
}

extension GroupedAttentionShard: AttentionShard where Backend == CPUBackend {}

extension GroupedLayout {
    public func makeShard(_ shard: RankShard, weights: WeightSource, prefix: String) throws -> any AttentionShard {
        try GroupedAttentionShard(layout: self, shard: shard, weights: weights, prefix: prefix, on: CPUBackend())
    }

    public func makeShard<B: ComputeBackend>(_ shard: RankShard, weights: WeightSource, prefix: String,
                                             on backend: B) throws -> any BackendShard<B> {
        try GroupedAttentionShard(layout: self, shard: shard, weights: weights, prefix: prefix, on: backend)
    }
}
