#if canImport(Glibc)
import Glibc
#endif
import CKernels

/// The fast decode attention kernel (same contract as `PlainAttentionKernel`).
///
/// Dimension letters: L context length, T tile rows, W cache row width,
/// G heads of a group, HT heads of all groups, DK = key + RoPE width, DV value width.
///
/// One pass over the cache rows 0 ..< L per call:
/// - the rows are split into `threads` contiguous ranges, one per thread of a
///   persistent `WorkerPool`; each thread walks its range tile by tile;
/// - a tile [T, W] is read from the cache once (f16/bf16 converted to f32 into the
///   thread's scratch tile once) and then used by every group and head; the RoPE
///   columns are the same columns of the same tile for every group;
/// - per group, one of four inner-loop paths (`GroupPath`: by heads ≤ `simdMaxHeads`
///   and by `isa`):
///   * SIMD path (`isa` portable, or lone heads; SmallGroupKernel.swift): Swift SIMD8 FMA loops over sub-tiles of
///     `simdTile` rows, f16/bf16 converted in registers (no conversion pass), the
///     sub-tile read once sequentially first so the hardware prefetchers stream it;
///   * sgemm path (`isa` portable): scores [G, T] = τ·Q[G, DK]·Kᵀ and acc[G, DV] +=
///     P[G, T]·V[T, DV] are OpenBLAS sgemms reading the tile in place (ldb = W);
///   * AVX-512 path (`isa` avx512, CKernels/attention_avx512.c): the same products as
///     register-blocked FMA loops with heads along the lanes, from the queries
///     transposed and scaled once per call (`preparedQueries`), and the online
///     softmax vectorised over heads;
///   * AVX-512 small-group path (`isa` avx512, groups of 2 … `simdMaxHeads` heads,
///     CKernels/attention_small_avx512.c): dot products along the key columns reduced
///     16 (2–4 heads) or 32 (8–16 heads) scores at a time, f16/bf16 converted in
///     registers once per element, prefetches spread through the loops; it walks
///     the thread's whole row range itself in sub-tiles of MLRA_SMALL_SUBTILE rows;
/// - when every group takes the Swift SIMD path (`workSIMD`), the loops swap: sub-tiles
///   outside, groups inside, so each sub-tile is read/converted once for all groups;
/// - softmax is online per head (running max m, running sum l, accumulator
///   rescaled by exp(m_old − m_new)), so no length-L score vector exists;
/// - the threads' partial states (m, l, acc) are merged exactly at the end.
/// Scratch is sized on the first call that needs it and reused; a call allocates
/// nothing and creates no thread.
///
/// The inner loops were chosen by measurement; the figures are in docs/kernels.md.
public final class TiledAttentionKernel: AttentionKernel, PoolTask {
    public let threads: Int
    public let tile: Int
    /// Which inner loops run (`KernelISA`).
    public let isa: KernelISA
    /// Small AVX-512 groups that share columns take the rows in chunks of this many bytes.
    public let sharedChunkBytes: Int
    private let pool: WorkerPool
    /// AVX-512 path: per group, its queries as [DK][heads rounded up to 16], times the scale.
    /// AVX-512 small groups: their queries times the scale.
    private var preparedQueries = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private var preparedCapacity = 16
    private var scratch: [ThreadScratch]

    /// Rows per tile: the best of 64-512 for MLA and GQA (docs/kernels.md, "Tile rows").
    public static let defaultTile = 256
    /// Largest tile (or SIMD sub-tile) a caller may ask for: per-thread scratch is
    /// sized by tile × row width, which must stay far from an Int overflow.
    public static let maxTile = 1 << 16
    public static let defaultSIMDMaxHeads = 16
    public static let defaultSIMDTile = 32

    // The current call, read by the workers.
    private var job = Job()
    private var plans: UnsafeMutablePointer<GroupPlan>
    private var planCapacity = 0

    /// Groups with at most this many heads take the Swift SIMD path, larger ones sgemm.
    public let simdMaxHeads: Int
    /// Rows per sub-tile of the SIMD path (its keys and values stay in L1 across the heads);
    /// when every group takes the SIMD path, an upper bound (see `workSIMD`).
    public let simdTile: Int

    public init(threads: Int, tile: Int = TiledAttentionKernel.defaultTile,
                simdMaxHeads: Int = TiledAttentionKernel.defaultSIMDMaxHeads,
                simdTile: Int = TiledAttentionKernel.defaultSIMDTile, isa: KernelISA = .detected,
                sharedChunkBytes: Int = TiledAttentionKernel.defaultSharedChunkBytes) throws {
        precondition(isa.isSupported, "kernel ISA \(isa) is not supported by this CPU")
        precondition(threads >= 1, "kernel threads must be at least 1, got \(threads)")
        precondition(tile >= 1, "kernel tile must be at least 1 row, got \(tile)")
        precondition(simdTile >= 1, "kernel SIMD sub-tile must be at least 1 row, got \(simdTile)")
        self.threads = threads
        self.tile = tile
        self.simdMaxHeads = simdMaxHeads
        self.simdTile = simdTile
        self.isa = isa
        self.sharedChunkBytes = sharedChunkBytes
        pool = try WorkerPool(parts: threads)
        scratch = (0..<threads).map { _ in ThreadScratch() }
        plans = .allocate(capacity: 1)
        // Our threads are the parallelism; OpenBLAS threads inside a tile would fight them.
        BLAS.setThreads(1)
    }

    deinit { plans.deallocate(); preparedQueries.deallocate() }

    public func run(cache: KVCache, length: Int, groups: [KernelGroup], scale: Float,
                    queries: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        precondition(length >= 1 && length <= cache.length, "kernel length \(length) outside cache of \(cache.length)")
        let w = cache.width
        // Per group: where its heads sit in the state arrays, queries and outputs.
        if groups.count > planCapacity {
            plans.deallocate()
            plans = .allocate(capacity: groups.count)
            planCapacity = groups.count
        }
        var heads = 0, q = 0, o = 0, anyGEMM = false, prepared = 0, widestPadded = 0, anySwiftSIMD = false
        for (k, g) in groups.enumerated() {
            precondition(g.keyOffset + g.keyWidth <= w && g.ropeOffset + g.ropeWidth <= w && g.valueOffset + g.valueWidth <= w,
                         "kernel group \(k) reaches past the cache row width \(w)")
            let adjacent = g.ropeWidth == 0 || g.keyOffset + g.keyWidth == g.ropeOffset
            let path: GroupPath = g.heads > simdMaxHeads ? (isa == .avx512 ? .avx512Tile : .sgemm)
                : (isa == .avx512 && g.heads >= 2 && g.heads <= 16 ? .avx512Small : .swiftSIMD)
            anyGEMM = anyGEMM || path == .avx512Tile || path == .sgemm
            anySwiftSIMD = anySwiftSIMD || path == .swiftSIMD
            let padded = (g.heads + 15) / 16 * 16
            plans[k] = GroupPlan(group: g, headBase: heads, queryBase: q, outBase: o, keyAndRopeAdjacent: adjacent, path: path,
                                 paddedHeads: padded, preparedBase: prepared,
                                 segments: adjacent
                                    ? (DotSegment(q: 0, offset: g.keyOffset, width: g.queryWidth), DotSegment(q: 0, offset: 0, width: 0))
                                    : (DotSegment(q: 0, offset: g.keyOffset, width: g.keyWidth),
                                       DotSegment(q: g.keyWidth, offset: g.ropeOffset, width: g.ropeWidth)))
            heads += g.heads; q += g.heads * g.queryWidth; o += g.heads * g.valueWidth
            switch path {
            case .avx512Tile: prepared += padded * g.queryWidth; widestPadded = max(widestPadded, padded)
            case .avx512Small:
                prepared += mlra_small_prepared_count(Int32(g.heads), Int32(g.keyWidth), Int32(g.ropeWidth))
            case .sgemm, .swiftSIMD: break
            }
        }
        if prepared > 0 { prepareQueries(groupCount: groups.count, count: prepared, scale: scale, queries: queries) }
        for s in scratch {
            s.reserve(tileElements: cache.dtype == .f32 || !anyGEMM ? 0 : tile * w,
                      subTileElements: cache.dtype == .f32 || anyGEMM || !anySwiftSIMD ? 0 : min(simdTile, tile) * w,
                      scores: max(heads * tile, widestPadded * tile, MLRA_SMALL_SCORES),
                      heads: max(heads, widestPadded), outputs: o)
        }
        job = Job(storage: UnsafeRawPointer(cache.storage), dtype: cache.dtype, width: w, length: length,
                  groupCount: groups.count, heads: heads, scale: scale, queries: queries, anyGEMM: anyGEMM,
                  sharedColumns: !anyGEMM && groups.count > 1 && TiledAttentionKernel.shareColumns(groups),
                  anySwiftSIMD: anySwiftSIMD)
        pool.run(self)
        merge(heads: heads, groupCount: groups.count, out: out)
    }

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
                    processSmallAVX512(plans[k], rows: j.storage + row0 * rowBytes, dtype: j.dtype, count: n, width: w, state: s)
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
            // scratch when an sgemm group needs f32 rows, else converted in registers.
            let src = j.storage + row0 * w * j.dtype.bytes
            var rows = src.assumingMemoryBound(to: Float.self)
            var simdDType = j.dtype
            if j.dtype != .f32 && j.anyGEMM {
                convertTile(src, dtype: j.dtype, into: s.tileRows, count: n * w)
                rows = UnsafePointer(s.tileRows)
                simdDType = .f32
            }
            for k in 0..<j.groupCount {
                let p = plans[k]
                switch p.path {
                case .avx512Tile:
                    // This group's slice of the next tile's stored rows, prefetched while it computes.
                    let nextBytes = min(tile, end - row0 - n) * w * j.dtype.bytes
                    let slice = (nextBytes / 64 + j.groupCount - 1) / j.groupCount * 64
                    let lo = min(k * slice, nextBytes)
                    processTileAVX512(p, rows: rows, count: n, width: w, prefetch: src + n * w * j.dtype.bytes + lo,
                                      prefetchBytes: min(slice, nextBytes - lo), state: s)
                case .sgemm:
                    processTile(p, rows: rows, count: n, width: w, scale: j.scale, queries: j.queries, state: s)
                case .avx512Small:
                    processSmallAVX512(p, rows: simdDType == j.dtype ? src : UnsafeRawPointer(rows), dtype: simdDType,
                                       count: n, width: w, state: s)
                case .swiftSIMD:
                    processTileSIMD(p, rows: simdDType == j.dtype ? src : UnsafeRawPointer(rows), dtype: simdDType,
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

    /// Whether two of the groups read a common column (key, RoPE or value). Called
    /// per step: no allocation.
    public static func shareColumns(_ groups: [KernelGroup]) -> Bool {
        func overlap(_ a: Int, _ n: Int, _ b: Int, _ m: Int) -> Bool { n > 0 && m > 0 && a < b + m && b < a + n }
        func overlap(_ o: Int, _ n: Int, _ g: KernelGroup) -> Bool {
            overlap(o, n, g.keyOffset, g.keyWidth) || overlap(o, n, g.ropeOffset, g.ropeWidth)
                || overlap(o, n, g.valueOffset, g.valueWidth)
        }
        for a in groups.indices {
            let g = groups[a]
            for b in groups.indices where b > a {
                let h = groups[b]
                if overlap(g.keyOffset, g.keyWidth, h) || overlap(g.ropeOffset, g.ropeWidth, h)
                    || overlap(g.valueOffset, g.valueWidth, h) { return true }
            }
        }
        return false
    }

    /// Bytes of stored rows per chunk when small AVX-512 groups share columns: well
    /// inside a 1 MB L2, so the chunk is still there for the chunk's last group.
    public static let defaultSharedChunkBytes = 256 << 10

    /// Rows of `width` f32 elements that fit in 32 KB, a multiple of 4, at least 4.
    static func l1SubTileRows(width: Int) -> Int {
        max(4, 32768 / (max(width, 1) * 4) / 4 * 4)
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

    /// The AVX-512 groups' queries times the scale: large groups transposed as
    /// qt[c][h], heads padded with zeros to a multiple of 16 (one vector of lanes per
    /// 16 heads); small groups as `mlra_small_prepare` lays them out.
    private func prepareQueries(groupCount: Int, count: Int, scale: Float, queries: UnsafePointer<Float>) {
        if count > preparedCapacity {
            preparedQueries.deallocate()
            preparedQueries = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).assumingMemoryBound(to: Float.self)
            preparedCapacity = count
        }
        for k in 0..<groupCount {
            let p = plans[k], dk = p.group.queryWidth, hp = p.paddedHeads
            let out = preparedQueries + p.preparedBase, q = queries + p.queryBase
            switch p.path {
            case .avx512Tile:
                out.update(repeating: 0, count: dk * hp)
                for h in 0..<p.group.heads {
                    for c in 0..<dk { out[c * hp + h] = scale * q[h * dk + c] }
                }
            case .avx512Small:
                mlra_small_prepare(q, scale, Int32(p.group.heads), Int32(p.group.keyWidth), Int32(p.group.ropeWidth), out)
            case .sgemm, .swiftSIMD: break
            }
        }
    }

    /// `n` rows (f32, f16 or bf16 as stored) through the AVX-512 small-group loops.
    @inline(__always)
    private func processSmallAVX512(_ p: GroupPlan, rows: UnsafeRawPointer, dtype: StorageDType, count n: Int, width w: Int,
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

    /// One tile through the AVX-512 loops: scores, online softmax and P·V for the group.
    @inline(__always)
    private func processTileAVX512(_ p: GroupPlan, rows: UnsafePointer<Float>, count n: Int, width w: Int,
                                   prefetch: UnsafeRawPointer, prefetchBytes: Int, state s: ThreadScratch) {
        let g = p.group
        var desc = mlra_tile_group(
            qt: preparedQueries + p.preparedBase, heads: Int32(g.heads), hp: Int32(p.paddedHeads),
            key_off: Int32(g.keyOffset), key_w: Int32(g.keyWidth), rope_off: Int32(g.ropeOffset), rope_w: Int32(g.ropeWidth),
            value_off: Int32(g.valueOffset), dv: Int32(g.valueWidth),
            row_max: s.rowMax + p.headBase, row_sum: s.rowSum + p.headBase, acc: s.acc + p.outBase,
            scores: s.scores, correction: s.correction,
            prefetch: prefetch.assumingMemoryBound(to: CChar.self), prefetch_bytes: prefetchBytes)
        mlra_avx512_group_tile(&desc, rows, w, Int32(n))
    }

    @inline(__always)
    private func processTile(_ p: GroupPlan, rows: UnsafePointer<Float>, count n: Int, width w: Int, scale: Float,
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
    private func processTileSIMD(_ p: GroupPlan, rows: UnsafeRawPointer, dtype: StorageDType, count n: Int, rowsLeft: Int, width w: Int,
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

    /// out[head] = Σ_t acc_t·e^(m_t − M) / Σ_t l_t·e^(m_t − M), M = max_t m_t.
    private func merge(heads: Int, groupCount: Int, out: UnsafeMutablePointer<Float>) {
        for k in 0..<groupCount {
            let p = plans[k], dv = p.group.valueWidth
            for h in 0..<p.group.heads {
                let hh = p.headBase + h, o = out + p.outBase + h * dv
                var m = -Float.infinity
                for s in scratch { m = max(m, s.rowMax[hh]) }
                var total: Float = 0
                o.update(repeating: 0, count: dv)
                for s in scratch where s.rowSum[hh] > 0 {
                    let weight = expf(s.rowMax[hh] - m)
                    total += s.rowSum[hh] * weight
                    let a = s.acc + p.outBase + h * dv
                    for c in 0..<dv { o[c] += weight * a[c] }
                }
                let inv = 1 / total
                for c in 0..<dv { o[c] *= inv }
            }
        }
    }
}

/// The inner loops of one group (see the type's comment).
private enum GroupPath { case swiftSIMD, sgemm, avx512Tile, avx512Small }

/// Where one group's heads live in the per-call arrays.
private struct GroupPlan {
    let group: KernelGroup
    /// First head of the group among all heads (state arrays, score rows).
    let headBase: Int
    /// Offset of the group's queries and outputs.
    let queryBase: Int, outBase: Int
    /// Key then RoPE columns contiguous in the row: one sgemm with k = DK instead of two.
    let keyAndRopeAdjacent: Bool
    /// Which inner loops run the group.
    let path: GroupPath
    /// AVX-512 paths: heads rounded up to 16, and where the group's prepared queries start.
    let paddedHeads: Int, preparedBase: Int
    /// The SIMD path's key columns: key+RoPE as one run, or key and RoPE apart.
    let segments: (DotSegment, DotSegment)
}

private struct Job {
    var storage = UnsafeRawPointer(bitPattern: 64)!
    var dtype = StorageDType.f32
    var width = 0, length = 0, groupCount = 0, heads = 0
    var scale: Float = 1
    var queries = UnsafePointer<Float>(bitPattern: 64)!
    var anyGEMM = true
    /// Some columns are read by more than one group (the shared RoPE key).
    var sharedColumns = false
    /// Some group takes the Swift SIMD path.
    var anySwiftSIMD = false
}

/// One thread's scratch: a converted tile, its scores and its partial softmax state.
/// Separate 64-byte-aligned allocations, so threads never share a cache line.
private final class ThreadScratch {
    private(set) var tileRows = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private(set) var subTile = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private(set) var scores = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private(set) var rowMax = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private(set) var rowSum = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private(set) var acc = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    /// AVX-512 path: per padded head, e^(old max − new max) of the current tile.
    private(set) var correction = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private var capacities = [16, 16, 16, 16, 16, 16, 16]
    private(set) var outputCount = 0
    var sink: Float = 0
    /// Where the SIMD path's prefetches of the previous tile stopped.
    var prefetchedUpTo: UnsafeRawPointer? = nil

    func reserve(tileElements: Int, subTileElements: Int, scores scoreCount: Int, heads: Int, outputs: Int) {
        outputCount = outputs
        grow(&tileRows, 0, tileElements)
        grow(&subTile, 5, subTileElements)
        grow(&scores, 1, scoreCount)
        grow(&rowMax, 2, heads)
        grow(&rowSum, 3, heads)
        grow(&acc, 4, outputs)
        grow(&correction, 6, heads)
    }

    private func grow(_ p: inout UnsafeMutablePointer<Float>, _ slot: Int, _ count: Int) {
        guard count > capacities[slot] else { return }
        p.deallocate()
        p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).assumingMemoryBound(to: Float.self)
        capacities[slot] = count
    }

    deinit { [tileRows, subTile, scores, rowMax, rowSum, acc, correction].forEach { $0.deallocate() } }
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
