/// Runs one attention layer's shard over a sequence the way a decoder does:
/// positions 0 ..< prefill in one prefill call, every later position as a
/// single-token decode step on the cache. Returns this shard's partial output
/// [T, D] (the whole layer output when the shard is the whole layer).
public func runSequence(_ shard: AttentionShard, x: [Float], tokens: Int, prefill: Int,
                        cache: KVCache, kernel: AttentionKernel) -> [Float] {
    precondition(prefill >= 0 && prefill <= tokens)
    let d = shard.layout.nEmbd
    var y = [Float]()
    y.reserveCapacity(tokens * d)
    if prefill > 0 { y += shard.forward(Array(x[0..<(prefill * d)]), tokens: prefill, cache: cache, kernel: kernel) }
    for p in prefill..<tokens {
        y += shard.forward(Array(x[(p * d)..<((p + 1) * d)]), tokens: 1, cache: cache, kernel: kernel)
    }
    return y
}
