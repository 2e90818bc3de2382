/// The Swift SIMD path of `TiledAttentionKernel`: one group's heads against a tile
/// of cache rows with explicit FMA loops (no OpenBLAS call, no packing).
///
/// Scores: 2 heads × 4 rows per block, SIMD8 accumulators over the key (and RoPE)
/// columns, a transposing horizontal reduction, 4 scores stored at once.
/// P·V: 4 heads × 16 value columns per block held in registers over the rows
/// (a lone head: 64 columns).
/// The loops are generic over how a row element is read (`RowElement`); they run on
/// f32 rows (f16/bf16 sub-tiles are converted by the caller's one sequential pass:
/// converting in registers here, once per head pair, measured slower).
/// Rows are taken in sub-tiles small enough that the keys and values of one
/// sub-tile stay in L1 while every head of the group passes over them.

/// How one storage type is read as f32, 8 or 1 element(s) at a time.
protocol RowElement {
    static var bytes: Int { get }
    static func load8(_ p: UnsafeRawPointer, _ index: Int) -> SIMD8<Float>
    static func load1(_ p: UnsafeRawPointer, _ index: Int) -> Float
}

enum F32Rows: RowElement {
    static var bytes: Int { 4 }
    @inline(__always) static func load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        p.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)
    }
}

/// A run of query columns [q, q + width) dotted with row columns [offset, offset + width).
struct DotSegment {
    var q: Int, offset: Int, width: Int
}

/// Sums of four vectors, lane i = sum of vector i (a transposing halving tree).
@inline(__always)
func reduce4(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>, _ d: SIMD8<Float>) -> SIMD4<Float> {
    let ab = SIMD8(lowHalf: a.lowHalf + a.highHalf, highHalf: b.lowHalf + b.highHalf)
    let cd = SIMD8(lowHalf: c.lowHalf + c.highHalf, highHalf: d.lowHalf + d.highHalf)
    let x = SIMD8(lowHalf: ab.evenHalf + ab.oddHalf, highHalf: cd.evenHalf + cd.oddHalf)
    return x.evenHalf + x.oddHalf
}

@inline(__always)
func lanesSum(_ v: SIMD8<Float>) -> Float {
    let a = v.lowHalf + v.highHalf, b = a.lowHalf + a.highHalf
    return b.x + b.y
}

@inline(__always)
private func loadQ(_ q: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(q).loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
}

/// scores[h·ld + t] = scale · Σ_segments q[h]·row[t] for heads 0 ..< heads, rows 0 ..< n.
/// `queries` holds the group's heads with stride `dk`; row t starts at element t·w of `rows`.
@inline(__always)
func simdScores<E: RowElement>(_: E.Type, queries: UnsafePointer<Float>, heads: Int, dk: Int,
                               segments: (DotSegment, DotSegment), rows: UnsafeRawPointer, count n: Int, width w: Int,
                               scale: Float, scores: UnsafeMutablePointer<Float>, ld: Int,
                               prefetch: UnsafeRawPointer, prefetchBytes: Int) {
    // Lines of `prefetch` (the next sub-tile) requested per 4-row block, spread over all
    // blocks of all head pairs so the requests never pile up in the miss buffers.
    let blocks = max(1, ((heads + 1) / 2) * (n / 4))
    let quota = ((prefetchBytes + 63) / 64 + blocks - 1) / blocks * 64
    var cursor = 0
    var h = 0
    while h < heads {
        let pair = h + 2 <= heads
        let q0 = queries + h * dk, q1 = queries + (pair ? h + 1 : h) * dk
        var t = 0
        while t + 4 <= n {
            let stop = min(cursor + quota, prefetchBytes)
            while cursor < stop { prefetchLine(prefetch + cursor); cursor = cursor &+ 64 }
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
            var tail0 = SIMD4<Float>(), tail1 = SIMD4<Float>()
            let r0 = t * w, r1 = r0 + w, r2 = r1 + w, r3 = r2 + w
            for si in 0..<2 {
                let s = si == 0 ? segments.0 : segments.1
                var c = 0
                let qa = q0 + s.q, qb = q1 + s.q
                // Wrapping index arithmetic: overflow checks and the `pair` test inside
                // this loop showed up in perf (the offsets are bounded by the tile).
                let o0 = r0 &+ s.offset, o1 = r1 &+ s.offset, o2 = r2 &+ s.offset, o3 = r3 &+ s.offset
                if pair {
                    while c &+ 8 <= s.width {
                        let k0 = E.load8(rows, o0 &+ c), k1 = E.load8(rows, o1 &+ c)
                        let k2 = E.load8(rows, o2 &+ c), k3 = E.load8(rows, o3 &+ c)
                        let x = loadQ(qa, c), y = loadQ(qb, c)
                        a0 = a0.addingProduct(x, k0); a1 = a1.addingProduct(x, k1)
                        a2 = a2.addingProduct(x, k2); a3 = a3.addingProduct(x, k3)
                        b0 = b0.addingProduct(y, k0); b1 = b1.addingProduct(y, k1)
                        b2 = b2.addingProduct(y, k2); b3 = b3.addingProduct(y, k3)
                        c = c &+ 8
                    }
                } else {
                    while c &+ 8 <= s.width {
                        let x = loadQ(qa, c)
                        a0 = a0.addingProduct(x, E.load8(rows, o0 &+ c)); a1 = a1.addingProduct(x, E.load8(rows, o1 &+ c))
                        a2 = a2.addingProduct(x, E.load8(rows, o2 &+ c)); a3 = a3.addingProduct(x, E.load8(rows, o3 &+ c))
                        c = c &+ 8
                    }
                }
                while c < s.width {
                    let o = s.offset + c
                    let k = SIMD4(E.load1(rows, r0 + o), E.load1(rows, r1 + o), E.load1(rows, r2 + o), E.load1(rows, r3 + o))
                    tail0 = tail0.addingProduct(k, qa[c])
                    if pair { tail1 = tail1.addingProduct(k, qb[c]) }
                    c += 1
                }
            }
            let sa = (reduce4(a0, a1, a2, a3) + tail0) * scale
            UnsafeMutableRawPointer(scores + h * ld + t).storeBytes(of: sa, as: SIMD4<Float>.self)
            if pair {
                let sb = (reduce4(b0, b1, b2, b3) + tail1) * scale
                UnsafeMutableRawPointer(scores + (h + 1) * ld + t).storeBytes(of: sb, as: SIMD4<Float>.self)
            }
            t += 4
        }
        while t < n {
            for hh in h..<(pair ? h + 2 : h + 1) {
                let qh = queries + hh * dk
                var a = SIMD8<Float>(), tail: Float = 0
                    for si in 0..<2 {
                        let s = si == 0 ? segments.0 : segments.1
                    var c = 0
                    while c + 8 <= s.width {
                        a = a.addingProduct(loadQ(qh + s.q, c), E.load8(rows, t * w + s.offset + c)); c += 8
                    }
                    while c < s.width { tail += qh[s.q + c] * E.load1(rows, t * w + s.offset + c); c += 1 }
                }
                scores[hh * ld + t] = (lanesSum(a) + tail) * scale
            }
            t += 1
        }
        h += pair ? 2 : 1
    }
}

/// acc[h·dv + c] += Σ_t p[h·ld + t] · row[t][offset + c] for heads 0 ..< heads, c 0 ..< dv.
@inline(__always)
func simdAccumulate<E: RowElement>(_: E.Type, probabilities p: UnsafePointer<Float>, ld: Int, heads: Int,
                                   rows: UnsafeRawPointer, count n: Int, width w: Int, offset: Int, dv: Int,
                                   acc: UnsafeMutablePointer<Float>) {
    var h = 0
    while h + 4 <= heads {
        let p0 = p + h * ld, p1 = p0 + ld, p2 = p1 + ld, p3 = p2 + ld
        let o0 = acc + h * dv, o1 = o0 + dv, o2 = o1 + dv, o3 = o2 + dv
        var c = 0
        while c + 16 <= dv {
            var a0 = loadQ(o0, c), a1 = loadQ(o1, c), a2 = loadQ(o2, c), a3 = loadQ(o3, c)
            var b0 = loadQ(o0, c + 8), b1 = loadQ(o1, c + 8), b2 = loadQ(o2, c + 8), b3 = loadQ(o3, c + 8)
            var r = offset + c
            for t in 0..<n {
                let v = E.load8(rows, r), u = E.load8(rows, r &+ 8)
                let x0 = SIMD8(repeating: p0[t]), x1 = SIMD8(repeating: p1[t])
                let x2 = SIMD8(repeating: p2[t]), x3 = SIMD8(repeating: p3[t])
                a0 = a0.addingProduct(x0, v); b0 = b0.addingProduct(x0, u)
                a1 = a1.addingProduct(x1, v); b1 = b1.addingProduct(x1, u)
                a2 = a2.addingProduct(x2, v); b2 = b2.addingProduct(x2, u)
                a3 = a3.addingProduct(x3, v); b3 = b3.addingProduct(x3, u)
                r = r &+ w
            }
            store8(o0, c, a0); store8(o1, c, a1); store8(o2, c, a2); store8(o3, c, a3)
            store8(o0, c + 8, b0); store8(o1, c + 8, b1); store8(o2, c + 8, b2); store8(o3, c + 8, b3)
            c += 16
        }
        while c + 8 <= dv {
            var a0 = loadQ(o0, c), a1 = loadQ(o1, c), a2 = loadQ(o2, c), a3 = loadQ(o3, c)
            var r = offset + c
            for t in 0..<n {
                let v = E.load8(rows, r)
                a0 = a0.addingProduct(SIMD8(repeating: p0[t]), v); a1 = a1.addingProduct(SIMD8(repeating: p1[t]), v)
                a2 = a2.addingProduct(SIMD8(repeating: p2[t]), v); a3 = a3.addingProduct(SIMD8(repeating: p3[t]), v)
                r += w
            }
            store8(o0, c, a0); store8(o1, c, a1); store8(o2, c, a2); store8(o3, c, a3)
            c += 8
        }
        while c < dv {
            var s = SIMD4<Float>()
            for t in 0..<n { s = s.addingProduct(SIMD4(p0[t], p1[t], p2[t], p3[t]), E.load1(rows, t * w + offset + c)) }
            o0[c] += s[0]; o1[c] += s[1]; o2[c] += s[2]; o3[c] += s[3]
            c += 1
        }
        h += 4
    }
    while h < heads {
        let ph = p + h * ld, oh = acc + h * dv
        var c = 0
        // 64 columns per pass over the rows: 8 independent FMA chains (16 columns gave 2).
        // MHA 8 heads d64 32K, 1 thread, medians side by side: f32 0.58 → 0.61 of the
        // roofline, bf16 0.32 → 0.35. (8 rows per score block for a lone head, tried
        // with it, was no better on f32 and cost bf16 0.35 → 0.27: not kept.)
        while c + 64 <= dv {
            var a = (loadQ(oh, c), loadQ(oh, c + 8), loadQ(oh, c + 16), loadQ(oh, c + 24))
            var b = (loadQ(oh, c + 32), loadQ(oh, c + 40), loadQ(oh, c + 48), loadQ(oh, c + 56))
            var r = offset &+ c
            for t in 0..<n {
                let x = SIMD8(repeating: ph[t])
                a.0 = a.0.addingProduct(x, E.load8(rows, r)); a.1 = a.1.addingProduct(x, E.load8(rows, r &+ 8))
                a.2 = a.2.addingProduct(x, E.load8(rows, r &+ 16)); a.3 = a.3.addingProduct(x, E.load8(rows, r &+ 24))
                b.0 = b.0.addingProduct(x, E.load8(rows, r &+ 32)); b.1 = b.1.addingProduct(x, E.load8(rows, r &+ 40))
                b.2 = b.2.addingProduct(x, E.load8(rows, r &+ 48)); b.3 = b.3.addingProduct(x, E.load8(rows, r &+ 56))
                r = r &+ w
            }
            store8(oh, c, a.0); store8(oh, c + 8, a.1); store8(oh, c + 16, a.2); store8(oh, c + 24, a.3)
            store8(oh, c + 32, b.0); store8(oh, c + 40, b.1); store8(oh, c + 48, b.2); store8(oh, c + 56, b.3)
            c += 64
        }
        while c + 16 <= dv {
            var a = loadQ(oh, c), b = loadQ(oh, c + 8)
            var r = offset + c
            for t in 0..<n {
                let x = SIMD8(repeating: ph[t])
                a = a.addingProduct(x, E.load8(rows, r)); b = b.addingProduct(x, E.load8(rows, r + 8))
                r += w
            }
            store8(oh, c, a); store8(oh, c + 8, b)
            c += 16
        }
        while c + 8 <= dv {
            var a = loadQ(oh, c)
            for t in 0..<n { a = a.addingProduct(SIMD8(repeating: ph[t]), E.load8(rows, t * w + offset + c)) }
            store8(oh, c, a)
            c += 8
        }
        while c < dv {
            var s: Float = 0
            for t in 0..<n { s += ph[t] * E.load1(rows, t * w + offset + c) }
            oh[c] += s
            c += 1
        }
        h += 1
    }
}

@inline(__always)
private func store8(_ p: UnsafeMutablePointer<Float>, _ i: Int, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
}

@_silgen_name("llvm.prefetch.p0")
private func llvmPrefetch(_ address: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ dataCache: Int32)

/// PREFETCHT0 of the line holding `p` (LLVM's prefetch intrinsic: clang's `_m_prefetch`
/// imports into Swift as a no-op). Never faults, does not hold up retirement.
@inline(__always)
func prefetchLine(_ p: UnsafeRawPointer) { llvmPrefetch(p, 0, 3, 1) }

/// Reads one float per 64-byte line of [p, p + bytes) in address order and returns
/// their sum (kept by the caller, so the loads stay): a sequential stream that the
/// hardware prefetchers follow, pulling the rows into cache ahead of the FMA loops
/// (Swift has no prefetch instruction; `_m_prefetch` imports as a no-op).
@inline(__always)
func touchLines(_ p: UnsafeRawPointer, bytes: Int) -> Float {
    var sum: Float = 0
    var o = 0
    while o < bytes { sum += p.loadUnaligned(fromByteOffset: o, as: Float.self); o += 64 }
    return sum
}
