/// Runs one attention layer over a sequence the way a decoder does: positions
/// 0 ..< prefill in one prefill call, every later position as a single-token
/// decode step on the cache. Each call ends, as in a TP decoder, with the
/// output projection's one all-reduce over the TP group. Returns the
/// layer output [T, D] (on every rank, on the host).
public func runSequence<S: BackendShard>(_ shard: S, x: [Float], tokens: Int, prefill: Int, cache: S.Backend.Cache,
                                         on b: S.Backend, attention: S.Backend.Attention, collectives: TPCollectives = SingleProcess()) -> [Float] {
    precondition(prefill >= 0 && prefill <= tokens)
    let d = shard.layout.nEmbd
    var y = [Float]()
    y.reserveCapacity(tokens * d)
    func call(_ rows: Range<Int>) {
        let out = shard.forward(b.buffer(Array(x[(rows.lowerBound * d)..<(rows.upperBound * d)])),
                                rows: BatchRows(caches: [cache], tokens: [rows.count]), on: b, attention: attention, collectives: collectives)
        y += b.host(out, count: rows.count * d)
    }
    if prefill > 0 { call(0..<prefill) }
    for p in prefill..<tokens { call(p..<(p + 1)) }
    return y
}

/// `runSequence` on the CPU, with `kernel`.
public func runSequence(_ shard: any AttentionShard, x: [Float], tokens: Int, prefill: Int,
                        cache: KVCache, kernel: AttentionKernel,
                        collectives: TPCollectives = SingleProcess()) -> [Float] {
    runSequence(shard, x: x, tokens: tokens, prefill: prefill, cache: cache, on: CPUBackend(), attention: kernel, collectives: collectives)
}
