import Foundation
import MLRACore
import XCTest

/// TiledAttentionKernel against PlainAttentionKernel on real layouts and shards.
/// Both read the same stored cache, so the only differences are f32 summation
/// order and the vectorised exp: |tiled − plain| ≤ 2e-5 + 2e-4·|plain|.
final class KernelTests: XCTestCase {
    static let atol = 2e-5, rtol = 2e-4
    static let tile = 8   // small, so that short contexts cross several tiles

    /// Every variant, several TP ranks, all dtypes, threads 1–3, L = 1, tile ± 1, odd lengths.
    func testTiledMatchesPlainForEveryVariantDtypeThreadCountAndLength() throws {
        let cases: [(AttentionConfig, [Int])] = [
            (Shapes.grouped(.mha, h: 3), [1, 3]),
            (Shapes.grouped(.mqa, h: 5), [1]),
            (Shapes.grouped(.gqa, h: 8, dh: 16, group: 2), [1, 2, 4, 8]),
            (Shapes.latent(.mla, h: 3, dc: 20), [1, 3]),
            (Shapes.latent(.gla2, h: 6, dc: 40), [1, 2]),
            (Shapes.latent(.mlra2, h: 6, dc: 32), [1, 2, 4]),
            (Shapes.latent(.mlra4, h: 4, dc: 64, dn: 8, dr: 4), [1, 2, 4, 8]),
        ]
        let t = Self.tile
        let lengths = [1, 2, t - 1, t, t + 1, 2 * t + 3, 5 * t + 1]
        // Every inner-loop path: per ISA (AVX-512 where the CPU runs it), large-group loops
        // only and small-group loops only, SIMD sub-tiles that split a tile unevenly.
        let kernels = try (1...3).flatMap { th in
            try Self.largeGroupISAs.flatMap { isa in
                [try TiledAttentionKernel(threads: th, tile: t, simdMaxHeads: 0, isa: isa),
                 try TiledAttentionKernel(threads: th, tile: t, simdMaxHeads: .max, simdTile: 3, isa: isa),
                 try TiledAttentionKernel(threads: th, tile: t, simdMaxHeads: .max, simdTile: t, isa: isa)]
            }
        }
        for (config, tps) in cases {
            let layout = try config.layout()
            for tp in tps {
                for rank in Set([0, tp / 2, tp - 1]).sorted() {
                    let shard = try layout.shard(tp: tp, rank: rank)
                    let groups = layout.kernelGroups(for: shard)
                    let width = layout.cacheWidth(units: shard.units.count)
                    for dtype in StorageDType.allCases {
                        let cache = KVCache(dtype: dtype, width: width, capacity: lengths.max()!)
                        let seed = SeededInit(seed: 7), key = seed.nameKey("cache")
                        cache.fill(toLength: lengths.max()!) { j, c in 2 * seed.uniform(nameKey: key, index: j * width + c) }
                        let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: 11).map { 3 * $0 }
                        for length in lengths {
                            let ref = run(PlainAttentionKernel(), cache, length, groups, layout.softmaxScale, q)
                            for kernel in kernels {
                                let got = run(kernel, cache, length, groups, layout.softmaxScale, q)
                                assertClose(got, ref.map(Double.init), atol: Self.atol, rtol: Self.rtol,
                                            "\(config.variant) tp \(tp) rank \(rank) \(dtype) threads \(kernel.threads) "
                                                + "simd ≤ \(kernel.simdMaxHeads) heads, sub-tile \(kernel.simdTile), \(kernel.isa), L \(length)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The paper-size MLA shape (64 heads, 512 + 64) with the default tile, around its tile edges.
    func testTiledMatchesPlainAtPaperShapeWithDefaultTile() throws {
        let layout = try AttentionConfig(variant: .mlra4, nEmbd: 256, nHead: 64, qLoraRank: 64, kvLoraRank: 512,
                                         qkNopeHeadDim: 128, qkRopeHeadDim: 64).layout()
        let shard = try layout.shard(tp: 2, rank: 1)   // two blocks: key and RoPE not adjacent for block 0
        let groups = layout.kernelGroups(for: shard)
        let width = layout.cacheWidth(units: shard.units.count)
        let t = TiledAttentionKernel.defaultTile
        let cache = KVCache(dtype: .bf16, width: width, capacity: 2 * t + 1)
        let seed = SeededInit(seed: 3), key = seed.nameKey("cache")
        cache.fill(toLength: 2 * t + 1) { j, c in seed.uniform(nameKey: key, index: j * width + c) }
        let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: 5)
        for length in [1, t - 1, t, t + 1, 2 * t + 1] {
            let ref = run(PlainAttentionKernel(), cache, length, groups, layout.softmaxScale, q)
            for threads in [1, 2] {
                let kernels = try Self.largeGroupISAs.map { try TiledAttentionKernel(threads: threads, simdMaxHeads: 0, isa: $0) }
                    + [try TiledAttentionKernel(threads: threads, simdMaxHeads: .max)]
                for kernel in kernels {
                    let got = run(kernel, cache, length, groups, layout.softmaxScale, q)
                    assertClose(got, ref.map(Double.init), atol: Self.atol, rtol: Self.rtol,
                                "mlra4 paper shape threads \(threads) simd ≤ \(kernel.simdMaxHeads) heads \(kernel.isa) L \(length)")
                }
            }
        }
    }

    /// The large-group paths this CPU runs (AVX-512 is tested where the CPU has it; CI's does).
    static let largeGroupISAs = KernelISA.allCases.filter(\.isSupported)

    /// The AVX-512 loops' edges: head counts around their 16-lane vectors, 64-head chunks
    /// and 6-head P·V blocks; value widths with a masked last vector; key and RoPE apart;
    /// lengths around its token blocks (6, 8, 12, 16) and the tile.
    func testAVX512LoopsAcrossHeadCountsAndWidths() throws {
        try XCTSkipUnless(KernelISA.avx512.isSupported, "this CPU does not run AVX-512")
        let width = 20 + 6 + 3 + 70
        let cache = KVCache(dtype: .bf16, width: width, capacity: 140)
        let seed = SeededInit(seed: 9), key = seed.nameKey("cache")
        cache.fill(toLength: 140) { j, c in 2 * seed.uniform(nameKey: key, index: j * width + c) }
        for heads in [1, 5, 16, 17, 33, 40, 64, 70, 131] {
            for (dv, rope) in [(70, 6), (64, 0), (9, 6)] {
                // key columns 0..<20, 3 unused, RoPE 23..<29, values 29..<29 + dv
                let g = KernelGroup(heads: heads, keyOffset: 0, keyWidth: 20, ropeOffset: 23, ropeWidth: rope,
                                    valueOffset: 29, valueWidth: dv)
                let q = randomInput(tokens: 1, width: [g].totalQueryCount, seed: UInt64(heads)).map { 3 * $0 }
                for length in [1, 5, 6, 7, 13, 17, 24, 25, 70] {
                    let ref = run(PlainAttentionKernel(), cache, length, [g], 0.3, q)
                    for threads in [1, 2] {
                        let kernel = try TiledAttentionKernel(threads: threads, tile: 24, simdMaxHeads: 0, isa: .avx512)
                        assertClose(run(kernel, cache, length, [g], 0.3, q), ref.map(Double.init), atol: Self.atol, rtol: Self.rtol,
                                    "avx512 heads \(heads) dv \(dv) rope \(rope) threads \(threads) L \(length)")
                    }
                }
            }
        }
        // The small-group loops (2 … 16 heads): head counts padded to 2, 4, 8, 16 lanes,
        // lengths around their 64-row sub-tile and token blocks, every storage type.
        for dtype in StorageDType.allCases {
            let cache = KVCache(dtype: dtype, width: width, capacity: 140)
            cache.fill(toLength: 140) { j, c in 2 * seed.uniform(nameKey: key, index: j * width + c) }
            for heads in [2, 3, 4, 5, 7, 8, 9, 16] {
                for (dv, rope) in [(70, 6), (64, 0), (9, 6)] {
                    let g = KernelGroup(heads: heads, keyOffset: 0, keyWidth: 20, ropeOffset: 23, ropeWidth: rope,
                                        valueOffset: 29, valueWidth: dv)
                    let q = randomInput(tokens: 1, width: [g].totalQueryCount, seed: UInt64(heads)).map { 3 * $0 }
                    for length in [1, 2, 3, 15, 63, 64, 65, 129, 140] {
                        let ref = run(PlainAttentionKernel(), cache, length, [g], 0.3, q)
                        for threads in [1, 2] {
                            let kernel = try TiledAttentionKernel(threads: threads, simdMaxHeads: 16, isa: .avx512)
                            assertClose(run(kernel, cache, length, [g], 0.3, q), ref.map(Double.init), atol: Self.atol,
                                        rtol: Self.rtol, "avx512 small \(dtype) heads \(heads) dv \(dv) rope \(rope) threads \(threads) L \(length)")
                        }
                    }
                }
            }
        }
    }

    /// Small AVX-512 groups that share the RoPE columns (MLRA-4, 4 blocks of 4 heads on one
    /// rank) take the rows in chunks, all groups per chunk; chunks of 64 rows here, so
    /// lengths cross several. GQA groups (columns of their own) do not share.
    func testAVX512SmallGroupsSharingColumnsInChunks() throws {
        try XCTSkipUnless(KernelISA.avx512.isSupported, "this CPU does not run AVX-512")
        let layout = try Shapes.latent(.mlra4, h: 4, dc: 64, dn: 8, dr: 4).layout()
        let shard = try layout.shard(tp: 1, rank: 0)
        let groups = layout.kernelGroups(for: shard)
        XCTAssertEqual(groups.count, 4)
        XCTAssertTrue(TiledAttentionKernel.shareColumns(groups))
        let gqa = try Shapes.grouped(.gqa, h: 8, dh: 16, group: 2).layout()
        XCTAssertFalse(TiledAttentionKernel.shareColumns(gqa.kernelGroups(for: try gqa.shard(tp: 1, rank: 0))))
        let width = layout.cacheWidth(units: shard.units.count)
        for dtype in StorageDType.allCases {
            let cache = KVCache(dtype: dtype, width: width, capacity: 300)
            let seed = SeededInit(seed: 4), key = seed.nameKey("cache")
            cache.fill(toLength: 300) { j, c in 2 * seed.uniform(nameKey: key, index: j * width + c) }
            let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: 8).map { 3 * $0 }
            for length in [1, 63, 64, 65, 129, 300] {
                let ref = run(PlainAttentionKernel(), cache, length, groups, layout.softmaxScale, q)
                for threads in [1, 2] {
                    let kernel = try TiledAttentionKernel(threads: threads, isa: .avx512, sharedChunkBytes: 1)
                    assertClose(run(kernel, cache, length, groups, layout.softmaxScale, q), ref.map(Double.init),
                                atol: Self.atol, rtol: Self.rtol, "shared columns \(dtype) threads \(threads) L \(length)")
                }
            }
        }
    }

    /// A kernel object reused across calls with different group sets and widths stays correct.
    func testKernelReuseAcrossShapes() throws {
        let kernel = try TiledAttentionKernel(threads: 2, tile: 4, simdMaxHeads: 3)   // groups on both paths
        for config in [Shapes.latent(.mla, h: 4, dc: 12), Shapes.grouped(.gqa, h: 6, group: 3), Shapes.latent(.mlra4, h: 3, dc: 32)] {
            let layout = try config.layout()
            let shard = try layout.shard(tp: 1, rank: 0)
            let groups = layout.kernelGroups(for: shard)
            let width = layout.cacheWidth(units: shard.units.count)
            let cache = KVCache(dtype: .f32, width: width, capacity: 13)
            cache.fill(toLength: 13) { j, c in sin(Float(j * 7 + c)) }
            let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: 1)
            let ref = run(PlainAttentionKernel(), cache, 13, groups, layout.softmaxScale, q)
            assertClose(run(kernel, cache, 13, groups, layout.softmaxScale, q), ref.map(Double.init),
                        atol: Self.atol, rtol: Self.rtol, "reuse \(config.variant)")
        }
    }

    /// `--math bf16` on a bf16 cache (AVX-512 BF16; `auto` where they are the faster): the
    /// large-group loops multiply bf16 pairs into f32 sums. Against the Double reference on the
    /// stored cache, on the loops' edges: head counts around 16-lane vectors, 64-head chunks
    /// and 6-head P·V blocks; odd key and RoPE widths (a zero partner) at odd offsets; value
    /// widths with a masked last vector; odd lengths (an odd token pair) around token blocks
    /// and tiles; and beside a small group and a lone head (which stay f32) in one call. Two data ranges:
    /// cache and queries in [-1, 1) (the harness's checks' range), held to the stated
    /// tolerance `Tolerance.kernelAgreement(math: .bf16)`; and cache in [-2, 2), queries in
    /// [-3, 3), held to the rounding's bound (`bf16Bound`), which grows with the scores.
    func testBF16ProductsAgreeWithTheDoubleReference() throws {
        try XCTSkipUnless(ProductMath.bf16.isSupported, "this CPU has no AVX-512 BF16")
        let tol = Tolerance.kernelAgreement(math: .bf16)
        let width = 21 + 6 + 5 + 70
        let seed = SeededInit(seed: 9), key = seed.nameKey("cache")
        for (cacheScale, queryScale) in [(Float(1), Float(1)), (2, 3)] {
            let cache = KVCache(dtype: .bf16, width: width, capacity: 140)
            cache.fill(toLength: 140) { j, c in cacheScale * seed.uniform(nameKey: key, index: j * width + c) }
            for heads in [17, 33, 40, 64, 70, 131] {
                // key columns 1..<20 or 1..<21 (odd), RoPE 23..<28 (odd) or none, values 28..<28 + dv
                for (kw, dv, rope) in [(20, 70, 5), (19, 64, 0), (20, 9, 4), (19, 33, 5)] {
                    let g = KernelGroup(heads: heads, keyOffset: 1, keyWidth: kw, ropeOffset: 23, ropeWidth: rope,
                                        valueOffset: 28, valueWidth: dv)
                    let small = KernelGroup(heads: 4, keyOffset: 0, keyWidth: 16, ropeOffset: 23, ropeWidth: rope,
                                            valueOffset: 30, valueWidth: 16)
                    let lone = KernelGroup(heads: 1, keyOffset: 2, keyWidth: 9, valueOffset: 40, valueWidth: 24)
                    for groups in [[g], [small, lone, g]] {
                        let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: UInt64(heads)).map { queryScale * $0 }
                        for length in [1, 2, 5, 6, 7, 13, 24, 25, 49, 140] {
                            let ref = doubleReference(cache, length, groups, 0.3, q)
                            let bound = bf16Bound(cache, length, groups, 0.3, q, ref)
                            for threads in [1, 2] {
                                let kernel = try TiledAttentionKernel(threads: threads, tile: 24, math: .bf16)
                                XCTAssertEqual(kernel.productMath(dtype: .bf16, groups: groups), .bf16)
                                let got = run(kernel, cache, length, groups, 0.3, q)
                                let what = "bf16 products ×\(cacheScale) heads \(heads) kw \(kw) dv \(dv) rope \(rope) groups \(groups.count) "
                                    + "threads \(threads) L \(length)"
                                if cacheScale == 1 { assertClose(got, ref, tol, what) }
                                if let i = got.indices.first(where: { !(abs(Double(got[$0]) - ref[$0]) <= bound[$0]) }) {
                                    XCTFail("\(what): element \(i) is \(got[i]), reference \(ref[i]), beyond the rounding bound \(bound[i])")
                                }
                            }
                        }
                    }
                }
            }
        }
        // The paper-size MLA shard (64 heads, 512 + 64; MLRA-4 tp 2: two blocks, key and RoPE
        // apart for block 0) with the default tile, around its edges.
        let layout = try AttentionConfig(variant: .mlra4, nEmbd: 256, nHead: 64, qLoraRank: 64, kvLoraRank: 512,
                                         qkNopeHeadDim: 128, qkRopeHeadDim: 64).layout()
        let shard = try layout.shard(tp: 2, rank: 1)
        let groups = layout.kernelGroups(for: shard)
        let w = layout.cacheWidth(units: shard.units.count), t = TiledAttentionKernel.defaultTile
        let big = KVCache(dtype: .bf16, width: w, capacity: 2 * t + 1)
        big.fill(toLength: 2 * t + 1) { j, c in seed.uniform(nameKey: key, index: j * w + c) }
        let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: 5)
        for length in [1, t - 1, t, t + 1, 2 * t + 1] {
            let ref = doubleReference(big, length, groups, layout.softmaxScale, q)
            for threads in [1, 2] {
                let kernel = try TiledAttentionKernel(threads: threads, math: .bf16)
                assertClose(run(kernel, big, length, groups, layout.softmaxScale, q), ref, tol,
                            "bf16 products mlra4 paper shape threads \(threads) L \(length)")
            }
        }
    }

    /// Where `--math auto` (or bf16) has no bf16 loop it runs f32 math, says so, and gives the f32
    /// kernel's outputs bit for bit: f32 and f16 caches (AVX-512 FP16 would sum in f16), the
    /// portable loops (as on a CPU without AVX-512 BF16), and groups that take only the
    /// small-group loops.
    func testMathAutoFallsBackToF32WhereNoBF16LoopRuns() throws {
        let width = 20 + 6 + 3 + 70
        let big = KernelGroup(heads: 33, keyOffset: 0, keyWidth: 20, ropeOffset: 23, ropeWidth: 6, valueOffset: 29, valueWidth: 70)
        let small = KernelGroup(heads: 8, keyOffset: 0, keyWidth: 20, ropeOffset: 23, ropeWidth: 6, valueOffset: 29, valueWidth: 70)
        let seed = SeededInit(seed: 4), key = seed.nameKey("cache")
        var cases: [(StorageDType, KernelISA, [KernelGroup])] = [(.bf16, .portable, [big]), (.bf16, .portable, [small])]
        for isa in Self.largeGroupISAs { cases += [(.f32, isa, [big]), (.f16, isa, [big]), (.bf16, isa, [small])] }
        for (dtype, isa, groups) in cases {
            let cache = KVCache(dtype: dtype, width: width, capacity: 50)
            cache.fill(toLength: 50) { j, c in 2 * seed.uniform(nameKey: key, index: j * width + c) }
            let q = randomInput(tokens: 1, width: groups.totalQueryCount, seed: 3)
            // The strongest request this CPU takes: bf16 where it has AVX-512 BF16.
            let request: KernelMath = ProductMath.bf16.isSupported ? .bf16 : .auto
            let auto = try TiledAttentionKernel(threads: 2, tile: 8, isa: isa, math: request)
            let f32 = try TiledAttentionKernel(threads: 2, tile: 8, isa: isa, math: .f32)
            XCTAssertEqual(auto.productMath(dtype: dtype, groups: groups), .f32, "\(dtype) \(isa) \(groups[0].heads) heads")
            XCTAssertEqual(TiledAttentionKernel.productMath(math: request, isa: isa, dtype: dtype, groups: groups), .f32)
            for length in [1, 9, 50] {
                XCTAssertEqual(run(auto, cache, length, groups, 0.3, q), run(f32, cache, length, groups, 0.3, q),
                               "\(dtype) \(isa) \(groups[0].heads) heads L \(length)")
            }
        }
        // --math f32 never runs bf16 products; auto runs them where they are the faster
        // (on a CPU without AVX-512 BF16, or one where they are slower, f32).
        XCTAssertEqual(TiledAttentionKernel.productMath(math: .f32, dtype: .bf16, groups: [big]), .f32)
        XCTAssertEqual(TiledAttentionKernel.productMath(math: .auto, dtype: .bf16, groups: [big]),
                       ProductMath.bf16Outruns ? .bf16 : .f32)
        XCTAssertTrue(!ProductMath.bf16Outruns || ProductMath.bf16.isSupported)
        if ProductMath.bf16.isSupported {
            XCTAssertEqual(TiledAttentionKernel.productMath(math: .bf16, dtype: .bf16, groups: [big]), .bf16)
            XCTAssertEqual(TiledAttentionKernel.productMath(math: .bf16, isa: .portable, dtype: .bf16, groups: [big]), .f32)
        }
        XCTAssertEqual(PlainAttentionKernel().productMath(dtype: .bf16, groups: [big]), .f32)
    }

    /// Per output element, a bound on |bf16 products − exact| for this data: the queries τ·q
    /// rounded to bf16 (unit roundoff u = 2⁻⁹) move a score by at most Δ = u·τ·Σ_c |q_c|·max|k|,
    /// which moves the output by at most (e^{2Δ} − 1)·max|v|; the weights rounded to bf16 (the
    /// sum kept in f32) move it by at most u·max|v|; f32 sums add the f32 kernels' tolerance.
    private func bf16Bound(_ cache: KVCache, _ length: Int, _ groups: [KernelGroup], _ scale: Float, _ q: [Float],
                           _ ref: [Double]) -> [Double] {
        let w = cache.width, u = 1.0 / 512
        var rows = [Float](repeating: 0, count: length * w)
        rows.withUnsafeMutableBufferPointer { r in for j in 0..<length { cache.loadRow(j, into: r.baseAddress! + j * w) } }
        func largest(_ offset: Int, _ count: Int) -> Double {
            var m = 0.0
            for j in 0..<length { for c in 0..<count { m = max(m, abs(Double(rows[j * w + offset + c]))) } }
            return m
        }
        var out = [Double](), qi = 0
        for g in groups {
            let k = max(largest(g.keyOffset, g.keyWidth), largest(g.ropeOffset, g.ropeWidth)), v = largest(g.valueOffset, g.valueWidth)
            for _ in 0..<g.heads {
                let delta = u * Double(scale) * q[qi..<(qi + g.queryWidth)].reduce(0) { $0 + abs(Double($1)) } * k
                let b = v * (u + Foundation.expm1(2 * delta))
                for _ in 0..<g.valueWidth { out.append(b + Self.atol + Self.rtol * abs(ref[out.count])) }
                qi += g.queryWidth
            }
        }
        return out
    }

    /// The attention in Double over the stored (rounded) cache values: the reference the
    /// bf16-product loops are held to, apart from the f32 kernels they are compared with elsewhere.
    private func doubleReference(_ cache: KVCache, _ length: Int, _ groups: [KernelGroup], _ scale: Float, _ q: [Float]) -> [Double] {
        let w = cache.width
        var rows = [Float](repeating: 0, count: length * w)
        rows.withUnsafeMutableBufferPointer { r in for j in 0..<length { cache.loadRow(j, into: r.baseAddress! + j * w) } }
        var out = [Double](), qi = 0
        for g in groups {
            for _ in 0..<g.heads {
                var s = [Double](repeating: 0, count: length)
                for j in 0..<length {
                    var d = 0.0
                    for c in 0..<g.keyWidth { d += Double(q[qi + c]) * Double(rows[j * w + g.keyOffset + c]) }
                    for c in 0..<g.ropeWidth { d += Double(q[qi + g.keyWidth + c]) * Double(rows[j * w + g.ropeOffset + c]) }
                    s[j] = d * Double(scale)
                }
                let m = s.max()!
                let e = s.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
                for c in 0..<g.valueWidth {
                    var o = 0.0
                    for j in 0..<length { o += e[j] * Double(rows[j * w + g.valueOffset + c]) }
                    out.append(o / sum)
                }
                qi += g.queryWidth
            }
        }
        return out
    }

    /// The check can trip: a perturbed output fails the same tolerance.
    func testToleranceDetectsAnInjectedError() {
        let ref: [Double] = [1, -0.5, 0.25]
        var bad: [Float] = [1, -0.5, 0.25]
        bad[1] += Float(10 * (Self.atol + Self.rtol * 0.5))
        let worst = zip(bad, ref).map { abs(Double($0) - $1) - (Self.atol + Self.rtol * abs($1)) }.max()!
        XCTAssertGreaterThan(worst, 0)
    }

    private func run(_ kernel: AttentionKernel, _ cache: KVCache, _ length: Int, _ groups: [KernelGroup],
                     _ scale: Float, _ q: [Float]) -> [Float] {
        var out = [Float](repeating: .nan, count: groups.totalOutputCount)
        q.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { kernel.run(cache: cache, length: length, groups: groups, scale: scale,
                                                            queries: qp.baseAddress!, out: $0.baseAddress!) }
        }
        return out
    }
}
