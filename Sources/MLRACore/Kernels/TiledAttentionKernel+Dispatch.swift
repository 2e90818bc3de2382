import CKernels

// The per-thread work of `TiledAttentionKernel.run` and its four inner-loop paths
// (`GroupPath`), one function each; the type's comment says which group takes which.
extension TiledAttentionKernel {
    /// Part `part` of the context: rows [start, end), tile by tile, into the thread's state.
    public func work(part: Int) {
        let j = job, s = scratch[part], w = j.width
        let base = j.length / threads, extra = j.length % threads
        let start = part * base + min(part, extra)
        let end = start + base + (part < extra ? 1 : 0)
        s.rowMax.update(repeating: -.infinity, count: j.heads)
        s.rowSum.update(repeating: 0, count: j.heads)
        s.acc.update(repeating: 0, count: s.outputCount)
        s.prefetchedUpTo = nil
        if !j.anyGEMM {
            // Every group on a small-group path. AVX-512 groups with columns of their own
            // (GQA) each walk the whole range, one stream per group; groups that share
            // columns (the RoPE key of an MLA-family shard of several blocks) take the
            // range in chunks, all groups per chunk, so a shared column is read from
            // memory once per step (the chunk stays in L2 for the next group). Each is the
            // faster for its case (docs/kernels.md, "Small groups"); MHA's lone heads stay
            // on the Swift path, which shares sub-tiles.
            let rowBytes = w * j.dtype.bytes
            let chunk = j.sharedColumns ? max(MLRA_SMALL_SUBTILE, sharedChunkBytes / max(rowBytes, 1)) : end - start
            var row0 = start
            while row0 < end {
                let n = min(chunk, end - row0)
                for k in 0..<j.groupCount where plans[k].path == .avx512Small {
                    runAVX512SmallGroupPath(plans[k], rows: j.storage + row0 * rowBytes, dtype: j.dtype, count: n, width: w, state: s)
                }
                row0 += n
            }
            // The Swift SIMD groups share sub-tiles.
            if j.anySwiftSIMD {
                workSIMD(start: start, end: end, state: s)
            }
            return
        }
        var row0 = start
        while row0 < end {
            let n = min(tile, end - row0)
            // rows: [n, W] f32, in place for f32 caches; f16/bf16 converted once into
            // scratch when a large-group f32 path needs f32 rows, else converted in registers
            // (the bf16-product loops read the bf16 rows as stored).
            let src = j.storage + row0 * w * j.dtype.bytes
            var rows = src.assumingMemoryBound(to: Float.self)
            var simdDType = j.dtype
            if j.dtype != .f32 && j.f32Tile {
                convertTile(src, dtype: j.dtype, into: s.tileRows, count: n * w)
                rows = UnsafePointer(s.tileRows)
                simdDType = .f32
            }
            for k in 0..<j.groupCount {
                let p = plans[k]
                switch p.path {
                case .avx512Tile, .avx512TileBF16:
                    // This group's slice of the next tile's stored rows, prefetched while it computes.
                    let nextBytes = min(tile, end - row0 - n) * w * j.dtype.bytes
                    let slice = (nextBytes / 64 + j.groupCount - 1) / j.groupCount * 64
                    let lo = min(k * slice, nextBytes)
                    runAVX512TilePath(p, rows: p.path == .avx512Tile ? UnsafeRawPointer(rows) : src, count: n, width: w,
                                      prefetch: src + n * w * j.dtype.bytes + lo, prefetchBytes: min(slice, nextBytes - lo), state: s)
                case .sgemm:
                    runSGEMMPath(p, rows: rows, count: n, width: w, scale: j.scale, queries: j.queries, state: s)
                case .avx512Small:
                    runAVX512SmallGroupPath(p, rows: simdDType == j.dtype ? src : UnsafeRawPointer(rows), dtype: simdDType,
                                       count: n, width: w, state: s)
                case .swiftSIMD:
                    runSwiftSIMDPath(p, rows: simdDType == j.dtype ? src : UnsafeRawPointer(rows), dtype: simdDType,
                                    count: n, rowsLeft: end - row0, width: w, scale: j.scale, queries: j.queries, state: s)
                }
            }
            row0 += n
        }
    }

    /// Every group on the SIMD path: rows [start, end) in sub-tiles of `simdTile` rows,
    /// each sub-tile read (f16/bf16: converted) once and then used by every group
    /// before the next one. Tile boundaries play no part. The next sub-tile is
    /// prefetched in slices, one slice from each group's score loop, so that a
    /// shard of many 1-head groups (MHA) spreads the requests over all its groups.
    /// (Groups outside, sub-tiles inside, as the mixed path does, converted each
    /// bf16 sub-tile once per group and walked a whole tile per group.)
    ///
    /// The sub-tile is `simdTile` rows at most, and at most what keeps its f32 rows
    /// within ~32 KB of L1 (`l1SubTileRows`): MHA 8 heads d64 (rows of 4 KB), 32K,
    /// 1 thread, medians side by side, 32 → 8 rows: f32 0.61 → 0.80 of the roofline,
    /// bf16 0.35 → 0.38. GQA 8 heads d128 (1 KB rows) keeps its 32.
    private func workSIMD(start: Int, end: Int, state s: ThreadScratch) {
        let j = job, w = j.width, rowBytes = w * j.dtype.bytes
        let subRows = min(simdTile, tile, TiledAttentionKernel.l1SubTileRows(width: w))
        var row0 = start
        while row0 < end {
            let m = min(subRows, end - row0)
            let src = j.storage + row0 * rowBytes
            let rows: UnsafeRawPointer
            switch j.dtype {
            case .f32:
                rows = src
                if row0 == start { s.sink += touchLines(src, bytes: m * rowBytes) }
            case .f16:
                Float16.load(src.assumingMemoryBound(to: Float16.self), into: s.subTile, count: m * w)
                rows = UnsafeRawPointer(s.subTile)
            case .bf16:
                BFloat16.load(src.assumingMemoryBound(to: BFloat16.self), into: s.subTile, count: m * w)
                rows = UnsafeRawPointer(s.subTile)
            }
            let next = src + m * rowBytes, nextBytes = max(0, min(subRows, end - row0 - m)) * rowBytes
            let slice = (nextBytes + 64 * j.groupCount - 1) / (64 * j.groupCount) * 64
            for k in 0..<j.groupCount where plans[k].path == .swiftSIMD {
                let p = plans[k], g = p.group
                let lo = min(k * slice, nextBytes), hi = min(lo + slice, nextBytes)
                let scores = s.scores + p.headBase * tile
                simdScores(F32Rows.self, queries: j.queries + p.queryBase, heads: g.heads, dk: g.queryWidth, segments: p.segments,
                           rows: rows, count: m, width: w, scale: j.scale, scores: scores, ld: tile,
                           prefetch: next + lo, prefetchBytes: hi - lo)
                softmaxUpdate(p, scores: scores, count: m, state: s)
                simdAccumulate(F32Rows.self, probabilities: scores, ld: tile, heads: g.heads, rows: rows, count: m, width: w,
                               offset: g.valueOffset, dv: g.valueWidth, acc: s.acc + p.outBase)
            }
            row0 += m
        }
    }

    /// f16/bf16 rows to f32 (AVX-512 when the kernel runs it, else Swift SIMD).
    @inline(__always)
    private func convertTile(_ src: UnsafeRawPointer, dtype: StorageDType, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let bits = src.assumingMemoryBound(to: UInt16.self)
        switch (dtype, isa) {
        case (.f32, _): break
        case (.f16, .avx512): mlra_avx512_f16_to_f32(bits, dst, count)
        case (.bf16, .avx512): mlra_avx512_bf16_to_f32(bits, dst, count)
        case (.f16, .portable): Float16.load(src.assumingMemoryBound(to: Float16.self), into: dst, count: count)
        case (.bf16, .portable): BFloat16.load(src.assumingMemoryBound(to: BFloat16.self), into: dst, count: count)
        }
    }

    /// `n` rows (f32, f16 or bf16 as stored) through the AVX-512 small-group loops.
    @inline(__always)
    private func runAVX512SmallGroupPath(_ p: GroupPlan, rows: UnsafeRawPointer, dtype: StorageDType, count n: Int, width w: Int,
                                    state s: ThreadScratch) {
        guard n > 0 else { return }
        let g = p.group
        var desc = mlra_small_group(
            q: preparedQueries + p.preparedBase, heads: Int32(g.heads),
            key_off: Int32(g.keyOffset), key_w: Int32(g.keyWidth), rope_off: Int32(g.ropeOffset), rope_w: Int32(g.ropeWidth),
            value_off: Int32(g.valueOffset), dv: Int32(g.valueWidth),
            row_max: s.rowMax + p.headBase, row_sum: s.rowSum + p.headBase, acc: s.acc + p.outBase, scores: s.scores)
        mlra_avx512_small_group(&desc, rows, dtype.cDType, w, n)
    }

    /// One tile through the AVX-512 loops: scores, online softmax and P·V for the group;
    /// `rows` are f32 (avx512Tile), or bf16 as stored (avx512TileBF16: bf16 products,
    /// attention_bf16_avx512.c).
    @inline(__always)
    private func runAVX512TilePath(_ p: GroupPlan, rows: UnsafeRawPointer, count n: Int, width w: Int,
                                   prefetch: UnsafeRawPointer, prefetchBytes: Int, state s: ThreadScratch) {
        let g = p.group, bf16 = p.path == .avx512TileBF16
        let words = { (f: UnsafeMutablePointer<Float>) in bf16 ? UnsafeMutableRawPointer(f).assumingMemoryBound(to: UInt32.self) : nil }
        var desc = mlra_tile_group(
            qt: preparedQueries + p.preparedBase, heads: Int32(g.heads), hp: Int32(p.paddedHeads),
            key_off: Int32(g.keyOffset), key_w: Int32(g.keyWidth), rope_off: Int32(g.ropeOffset), rope_w: Int32(g.ropeWidth),
            value_off: Int32(g.valueOffset), dv: Int32(g.valueWidth),
            row_max: s.rowMax + p.headBase, row_sum: s.rowSum + p.headBase, acc: s.acc + p.outBase,
            scores: s.scores, correction: s.correction,
            prefetch: prefetch.assumingMemoryBound(to: CChar.self), prefetch_bytes: prefetchBytes,
            ppairs: words(s.probabilityPairs), vpairs: words(s.valuePairs))
        if bf16 {
            mlra_avx512_group_tile_bf16(&desc, rows.assumingMemoryBound(to: UInt16.self), w, Int32(n))
        } else {
            mlra_avx512_group_tile(&desc, rows.assumingMemoryBound(to: Float.self), w, Int32(n))
        }
    }

    @inline(__always)
    private func runSGEMMPath(_ p: GroupPlan, rows: UnsafePointer<Float>, count n: Int, width w: Int, scale: Float,
                             queries: UnsafePointer<Float>, state s: ThreadScratch) {
        let g = p.group, dk = g.queryWidth
        let q = queries + p.queryBase
        // scores: [G, T] with row stride `tile`.
        let scores = s.scores + p.headBase * tile
        if p.keyAndRopeAdjacent {
            BLAS.gemmNT(q, rows + g.keyOffset, scores, m: g.heads, n: n, k: dk, lda: dk, ldb: w, ldc: tile, alpha: scale)
        } else {
            BLAS.gemmNT(q, rows + g.keyOffset, scores, m: g.heads, n: n, k: g.keyWidth, lda: dk, ldb: w, ldc: tile, alpha: scale)
            BLAS.gemmNT(q + g.keyWidth, rows + g.ropeOffset, scores, m: g.heads, n: n, k: g.ropeWidth,
                        lda: dk, ldb: w, ldc: tile, alpha: scale, accumulate: true)
        }
        // acc: [G, DV]
        let acc = s.acc + p.outBase
        softmaxUpdate(p, scores: scores, count: n, state: s)
        BLAS.gemmNN(UnsafePointer(scores), rows + g.valueOffset, acc, m: g.heads, n: g.valueWidth, k: n,
                    lda: tile, ldb: w, ldc: g.valueWidth, accumulate: true)
    }

    /// The SIMD path for one group: the tile in sub-tiles of `simdTile` rows. While one
    /// sub-tile is computed, the next one (rows are contiguous across tiles) is
    /// prefetched line by line from inside the score loop (this machine's hardware
    /// prefetchers do not keep up); a thread's first sub-tile is read sequentially first
    /// instead. f16/bf16 sub-tiles are converted into the thread's f32 scratch by one
    /// sequential pass (L1-resident), which was faster than converting in registers inside
    /// the FMA loops (docs/kernels.md, "The Swift SIMD path").
    @inline(__always)
    private func runSwiftSIMDPath(_ p: GroupPlan, rows: UnsafeRawPointer, dtype: StorageDType, count n: Int, rowsLeft: Int, width w: Int,
                                 scale: Float, queries: UnsafePointer<Float>, state s: ThreadScratch) {
        let g = p.group
        let q = queries + p.queryBase, scores = s.scores + p.headBase * tile, acc = s.acc + p.outBase
        var t0 = 0
        while t0 < n {
            let m = min(simdTile, n - t0)
            let sub: UnsafeRawPointer
            switch dtype {
            case .f32:
                sub = rows + t0 * w * 4
                if t0 == 0 && s.prefetchedUpTo != rows { s.sink += touchLines(sub, bytes: m * w * 4) }
            case .f16:
                Float16.load((rows + t0 * w * 2).assumingMemoryBound(to: Float16.self), into: s.subTile, count: m * w)
                sub = UnsafeRawPointer(s.subTile)
            case .bf16:
                BFloat16.load((rows + t0 * w * 2).assumingMemoryBound(to: BFloat16.self), into: s.subTile, count: m * w)
                sub = UnsafeRawPointer(s.subTile)
            }
            // The next sub-tile (in this tile or the next one: rows are contiguous) is
            // prefetched while this one is computed.
            let rowBytes = w * dtype.bytes
            let next = rows + (t0 + m) * rowBytes, nextRows = max(0, min(simdTile, rowsLeft - t0 - m))
            simdScores(F32Rows.self, queries: q, heads: g.heads, dk: g.queryWidth, segments: p.segments, rows: sub, count: m, width: w,
                       scale: scale, scores: scores, ld: tile, prefetch: next, prefetchBytes: nextRows * rowBytes)
            if t0 + m >= n { s.prefetchedUpTo = nextRows > 0 ? next : nil }
            softmaxUpdate(p, scores: scores, count: m, state: s)
            simdAccumulate(F32Rows.self, probabilities: scores, ld: tile, heads: g.heads, rows: sub, count: m, width: w,
                           offset: g.valueOffset, dv: g.valueWidth, acc: acc)
            t0 += m
        }
    }

    /// Online softmax over one tile's scores [G, n] (row stride `tile`): scores become
    /// exp(score − running max), sums and accumulators are rescaled when the max grows.
    @inline(__always)
    private func softmaxUpdate(_ p: GroupPlan, scores: UnsafeMutablePointer<Float>, count n: Int, state s: ThreadScratch) {
        let g = p.group, acc = s.acc + p.outBase
        for h in 0..<g.heads {
            let hh = p.headBase + h
            let row = scores + h * tile
            let tileMax = maxOf(row, count: n)
            let oldMax = s.rowMax[hh]
            let newMax = max(oldMax, tileMax)
            let tileSum = exponentiate(row, count: n, minus: newMax)
            if oldMax < newMax {
                let correction = oldMax == -.infinity ? 0 : fastExp(oldMax - newMax)
                s.rowSum[hh] = s.rowSum[hh] * correction + tileSum
                s.rowMax[hh] = newMax
                scaleVector(acc + h * g.valueWidth, count: g.valueWidth, by: correction)
            } else {
                s.rowSum[hh] += tileSum
            }
        }
    }
}

// MARK: - Vector helpers (Swift SIMD, 16 lanes)

@inline(__always)
private func maxOf(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var m = SIMD16<Float>(repeating: -.infinity)
    var i = 0
    while i + 16 <= n {
        m = laneMax(m, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)); i += 16
    }
    var r = horizontalMax(m)
    while i < n { r = max(r, x[i]); i += 1 }
    return r
}

/// x ← exp(x − shift) in place; returns Σ x.
@inline(__always)
private func exponentiate(_ x: UnsafeMutablePointer<Float>, count n: Int, minus shift: Float) -> Float {
    var sum = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let e = fastExp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - shift)
        UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: SIMD16<Float>.self)
        sum += e; i += 16
    }
    var tail: Float = 0
    while i < n { let e = fastExp(x[i] - shift); x[i] = e; tail += e; i += 1 }
    return horizontalSum(sum) + tail
}

// Halving trees: SIMD16's own .max()/.sum() extract lanes one by one through the stack.
@inline(__always)
private func horizontalMax(_ v: SIMD16<Float>) -> Float {
    let a = laneMax(v.lowHalf, v.highHalf), b = laneMax(a.lowHalf, a.highHalf)
    let c = laneMax(b.lowHalf, b.highHalf)
    return max(c.x, c.y)
}

@inline(__always)
private func horizontalSum(_ v: SIMD16<Float>) -> Float {
    let a = v.lowHalf + v.highHalf, b = a.lowHalf + a.highHalf, c = b.lowHalf + b.highHalf
    return c.x + c.y
}

@inline(__always)
private func scaleVector(_ x: UnsafeMutablePointer<Float>, count n: Int, by factor: Float) {
    for i in 0..<n { x[i] *= factor }
}
