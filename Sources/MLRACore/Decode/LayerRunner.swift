/// Runs one attention layer over a sequence the way a decoder does: positions
/// 0 ..< prefill in one prefill call, every later position as a single-token
/// decode step on the cache. Each call ends, as in a TP decoder, with the
/// output projection's one all-reduce over the TP group. Returns the
/// layer output [T, D] (on every rank).
public func runSequence(_ shard: any AttentionShard, x: [Float], tokens: Int, prefill: Int,
                        cache: KVCache, kernel: AttentionKernel,
                        collectives: TPCollectives = SingleProcess()) -> [Float] {
    precondition(prefill >= 0 && prefill <= tokens)
    let d = shard.layout.nEmbd
    var y = [Float]()
    y.reserveCapacity(tokens * d)
    func call(_ rows: Range<Int>) {
        y += shard.forward(Array(x[(rows.lowerBound * d)..<(rows.upperBound * d)]), tokens: rows.count,
                           cache: cache, kernel: kernel, collectives: collectives)
    }
    if prefill > 0 { call(0..<prefill) }
    for p in prefill..<tokens { call(p..<(p + 1)) }
    return y
}
