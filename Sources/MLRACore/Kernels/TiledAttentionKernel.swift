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
///   and by `isa`), each one function of TiledAttentionKernel+Dispatch.swift:
///   * Swift SIMD path (`runSwiftSIMDPath`; `isa` portable, or lone heads; its loops in
///     SmallGroupKernel.swift): Swift SIMD8 FMA loops over sub-tiles of
///     `simdTile` rows, f16/bf16 converted in registers (no conversion pass), the
///     sub-tile read once sequentially first so the hardware prefetchers stream it;
///   * sgemm path (`runSGEMMPath`; `isa` portable): scores [G, T] = τ·Q[G, DK]·Kᵀ and acc[G, DV] +=
///     P[G, T]·V[T, DV] are OpenBLAS sgemms reading the tile in place (ldb = W);
///   * AVX-512 path (`runAVX512TilePath`; `isa` avx512, CKernels/attention_avx512.c): the same products as
///     register-blocked FMA loops with heads along the lanes, from the queries
///     transposed and scaled once per call (`preparedQueries`), and the online
///     softmax vectorised over heads; with bf16 products (`math`, `productMath`) the
///     same loops multiply the bf16 rows as stored by VDPBF16PS (attention_bf16_avx512.c),
///     the tile not converted;
///   * AVX-512 small-group path (`runAVX512SmallGroupPath`; `isa` avx512, groups of 2 … `simdMaxHeads` heads,
///     CKernels/attention_small_avx512.c): dot products along the key columns reduced
///     16 (2–4 heads) or 32 (8–16 heads) scores at a time, f16/bf16 converted in
///     registers once per element, prefetches spread through the loops; it walks
///     the thread's whole row range itself in sub-tiles of MLRA_SMALL_SUBTILE rows;
/// - when every group takes the Swift SIMD path (`workSIMD`), the loops swap: sub-tiles
///   outside, groups inside, so each sub-tile is read/converted once for all groups;
/// - softmax is online per head (running max m, running sum l, accumulator
///   rescaled by exp(m_old − m_new)), so no length-L score vector exists;
/// - the threads' partial states (m, l, acc) are merged exactly at the end
///   (`merge`, with the per-thread `ThreadScratch`, in TiledAttentionKernel+Merge.swift).
/// Scratch is sized on the first call that needs it and reused; a call allocates
/// nothing and creates no thread. This file plans a call (`run`: each group's path and
/// where its heads sit, the prepared queries); the per-thread `work` is in +Dispatch.
///
/// The inner loops were chosen by measurement; the figures are in docs/kernels.md.
public final class TiledAttentionKernel: AttentionKernel, PoolTask {
    public let threads: Int
    public let tile: Int
    /// Which inner loops run (`KernelISA`).
    public let isa: KernelISA
    /// Which arithmetic the products may use (`KernelMath`); `productMath` says what a call runs.
    public let math: KernelMath
    /// Small AVX-512 groups that share columns take the rows in chunks of this many bytes.
    public let sharedChunkBytes: Int
    let pool: WorkerPool
    /// AVX-512 path: per group, its queries as [DK][heads rounded up to 16], times the scale.
    /// AVX-512 small groups: their queries times the scale.
    private(set) var preparedQueries = UnsafeMutablePointer<Float>.allocate(capacity: 16)
    private var preparedCapacity = 16
    private(set) var scratch: [ThreadScratch]

    /// Rows per tile: the best of 64-512 for MLA and GQA (docs/kernels.md, "Tile rows").
    public static let defaultTile = 256
    /// Largest tile (or SIMD sub-tile) a caller may ask for: per-thread scratch is
    /// sized by tile × row width, which must stay far from an Int overflow.
    public static let maxTile = 1 << 16
    public static let defaultSIMDMaxHeads = 16
    public static let defaultSIMDTile = 32

    // The current call, read by the workers.
    private(set) var job = Job()
    private(set) var plans: UnsafeMutablePointer<GroupPlan>
    private var planCapacity = 0

    /// Groups with at most this many heads take the Swift SIMD path, larger ones sgemm.
    public let simdMaxHeads: Int
    /// Rows per sub-tile of the SIMD path (its keys and values stay in L1 across the heads);
    /// when every group takes the SIMD path, an upper bound (see `workSIMD`).
    public let simdTile: Int

    public init(threads: Int, tile: Int = TiledAttentionKernel.defaultTile,
                simdMaxHeads: Int = TiledAttentionKernel.defaultSIMDMaxHeads,
                simdTile: Int = TiledAttentionKernel.defaultSIMDTile, isa: KernelISA = .detected,
                math: KernelMath = .f32, sharedChunkBytes: Int = TiledAttentionKernel.defaultSharedChunkBytes) throws {
        precondition(isa.isSupported, "kernel ISA \(isa) is not supported by this CPU")
        precondition(math != .bf16 || ProductMath.bf16.isSupported, "kernel math bf16 needs AVX-512 BF16, which this CPU lacks")
        precondition(threads >= 1, "kernel threads must be at least 1, got \(threads)")
        precondition(tile >= 1, "kernel tile must be at least 1 row, got \(tile)")
        precondition(simdTile >= 1, "kernel SIMD sub-tile must be at least 1 row, got \(simdTile)")
        self.threads = threads
        self.tile = tile
        self.simdMaxHeads = simdMaxHeads
        self.simdTile = simdTile
        self.isa = isa
        self.math = math
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
        var f32Tile = false, widestBF16Padded = 0, widestBF16Values = 0
        let bf16Tile = bf16Products(dtype: cache.dtype)
        for (k, g) in groups.enumerated() {
            precondition(g.keyOffset + g.keyWidth <= w && g.ropeOffset + g.ropeWidth <= w && g.valueOffset + g.valueWidth <= w,
                         "kernel group \(k) reaches past the cache row width \(w)")
            let adjacent = g.ropeWidth == 0 || g.keyOffset + g.keyWidth == g.ropeOffset
            let path: GroupPath = g.heads > simdMaxHeads ? (isa == .avx512 ? (bf16Tile ? .avx512TileBF16 : .avx512Tile) : .sgemm)
                : (isa == .avx512 && g.heads >= 2 && g.heads <= 16 ? .avx512Small : .swiftSIMD)
            anyGEMM = anyGEMM || path == .avx512Tile || path == .avx512TileBF16 || path == .sgemm
            f32Tile = f32Tile || path == .avx512Tile || path == .sgemm
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
            case .avx512TileBF16:
                prepared += mlra_tile_prepared_bf16_count(Int32(padded), Int32(g.keyWidth), Int32(g.ropeWidth))
                widestPadded = max(widestPadded, padded)
                widestBF16Padded = max(widestBF16Padded, padded)
                widestBF16Values = max(widestBF16Values, (g.valueWidth + 15) / 16 * 16)
            case .avx512Small:
                prepared += mlra_small_prepared_count(Int32(g.heads), Int32(g.keyWidth), Int32(g.ropeWidth))
            case .sgemm, .swiftSIMD: break
            }
        }
        if prepared > 0 { prepareQueries(groupCount: groups.count, count: prepared, scale: scale, queries: queries) }
        for s in scratch {
            s.reserve(tileElements: cache.dtype == .f32 || !f32Tile ? 0 : tile * w,
                      // Swift SIMD groups convert their own sub-tiles unless the tile is converted for them.
                      subTileElements: cache.dtype == .f32 || f32Tile || !anySwiftSIMD ? 0 : min(simdTile, tile) * w,
                      scores: max(heads * tile, widestPadded * tile, MLRA_SMALL_SCORES),
                      heads: max(heads, widestPadded), outputs: o,
                      probabilityPairs: (tile + 1) / 2 * widestBF16Padded, valuePairs: (tile + 1) / 2 * widestBF16Values)
        }
        job = Job(storage: UnsafeRawPointer(cache.storage), dtype: cache.dtype, width: w, length: length,
                  groupCount: groups.count, heads: heads, scale: scale, queries: queries, anyGEMM: anyGEMM, f32Tile: f32Tile,
                  sharedColumns: !anyGEMM && groups.count > 1 && TiledAttentionKernel.shareColumns(groups),
                  anySwiftSIMD: anySwiftSIMD)
        pool.run(self)
        merge(heads: heads, groupCount: groups.count, out: out)
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
            case .avx512TileBF16:
                UnsafeMutableRawPointer(out).withMemoryRebound(to: UInt32.self, capacity: 1) {
                    mlra_tile_prepare_bf16(q, scale, Int32(p.group.heads), Int32(hp), Int32(p.group.keyWidth), Int32(p.group.ropeWidth), $0)
                }
            case .sgemm, .swiftSIMD: break
            }
        }
    }

    /// Whether a call on a cache of `dtype` runs the large-group loops with bf16 products:
    /// a bf16 cache, the AVX-512 loops, a CPU with AVX-512 BF16, and `--math bf16`, or
    /// `--math auto` where those products are the faster (`ProductMath.bf16Outruns`).
    func bf16Products(dtype: StorageDType) -> Bool {
        Self.bf16Products(math: math, isa: isa, dtype: dtype)
    }

    static func bf16Products(math: KernelMath, isa: KernelISA, dtype: StorageDType) -> Bool {
        dtype == .bf16 && isa == .avx512 && ProductMath.bf16.isSupported
            && (math == .bf16 || (math == .auto && ProductMath.bf16Outruns))
    }

    /// bf16 when some group takes the large-group loops with bf16 products, else f32
    /// (the small-group and Swift loops multiply in f32 under every `math`).
    public func productMath(dtype: StorageDType, groups: [KernelGroup]) -> ProductMath {
        Self.productMath(math: math, isa: isa, simdMaxHeads: simdMaxHeads, dtype: dtype, groups: groups)
    }

    /// What a kernel of these settings runs (the sweep predicts its rows' `kernel_math` with it).
    public static func productMath(math: KernelMath, isa: KernelISA = .detected, simdMaxHeads: Int = defaultSIMDMaxHeads,
                                   dtype: StorageDType, groups: [KernelGroup]) -> ProductMath {
        bf16Products(math: math, isa: isa, dtype: dtype) && groups.contains(where: { $0.heads > simdMaxHeads }) ? .bf16 : .f32
    }
}

extension TiledAttentionKernel {
    /// The inner loops of one group (see the type's comment).
    enum GroupPath { case swiftSIMD, sgemm, avx512Tile, avx512TileBF16, avx512Small }

    /// Where one group's heads live in the per-call arrays.
    struct GroupPlan {
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

    struct Job {
        var storage = UnsafeRawPointer(bitPattern: 64)!
        var dtype = StorageDType.f32
        var width = 0, length = 0, groupCount = 0, heads = 0
        var scale: Float = 1
        var queries = UnsafePointer<Float>(bitPattern: 64)!
        var anyGEMM = true
        /// Some group reads the tile as f32 rows (f16/bf16 converted once per tile).
        var f32Tile = true
        /// Some columns are read by more than one group (the shared RoPE key).
        var sharedColumns = false
        /// Some group takes the Swift SIMD path.
        var anySwiftSIMD = false
    }
}
