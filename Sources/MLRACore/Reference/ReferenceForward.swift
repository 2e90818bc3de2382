#if canImport(Glibc)
import Glibc
#endif

/// The plain, un-absorbed attention layer in Double (method §3): per-head K and V
/// materialised for every position, causal softmax, no cache, no sharding. It
/// reads the checkpoint tensors in their own layouts and shares no code with
/// the decode path beyond the parameter list, so it is an independent check.
public enum ReferenceForward {
    /// y [T, D] for x [T, D].
    public static func run(_ layout: any AttentionLayout, weights: WeightSource, prefix: String = "",
                           x: [Double], tokens: Int) throws -> [Double] {
        var w = [String: [Double]]()
        for p in layout.parameters { w[p.name] = try weights.load(p.prefixed(prefix)).data.map(Double.init) }
        switch layout {
        case let l as LatentLayout: return latent(l, w, x, tokens)
        case let g as GroupedLayout: return grouped(g, w, x, tokens)
        default: preconditionFailure("unknown layout")
        }
    }

    /// y = W x for W stored [out, in].
    static func matvec(_ w: [Double], _ x: ArraySlice<Double>, out: Int) -> [Double] {
        let n = x.count
        let x0 = x.startIndex
        return (0..<out).map { o in
            var s = 0.0
            for i in 0..<n { s += w[o * n + i] * x[x0 + i] }
            return s
        }
    }

    static func rmsNorm(_ x: [Double], _ w: [Double], scale: Double) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let inv = scale / (ms + 1e-6).squareRoot()
        return zip(x, w).map { $0 * inv * $1 }
    }

    static func rope(_ x: [Double], position p: Int) -> [Double] {
        let m = x.count, half = m / 2
        var out = x
        for j in 0..<half {
            let theta = Double(p) * pow(10000.0, -2.0 * Double(j) / Double(m))
            out[j] = x[j] * cos(theta) - x[j + half] * sin(theta)
            out[j + half] = x[j] * sin(theta) + x[j + half] * cos(theta)
        }
        return out
    }

    /// Causal softmax attention of one query over keys/values 0...p.
    static func attend(q: [Double], keys: [[Double]], values: [[Double]], scale: Double) -> [Double] {
        let s = keys.map { k in scale * zip(q, k).reduce(0) { $0 + $1.0 * $1.1 } }
        let m = s.max()!
        let e = s.map { exp($0 - m) }
        let z = e.reduce(0, +)
        var o = [Double](repeating: 0, count: values[0].count)
        for (p, v) in zip(e, values) { for c in 0..<o.count { o[c] += p / z * v[c] } }
        return o
    }

    static func latent(_ L: LatentLayout, _ w: [String: [Double]], _ x: [Double], _ T: Int) -> [Double] {
        let (d, h, dq, dc, dn, dr, dl) = (L.nEmbd, L.nHead, L.qLoraRank, L.kvLoraRank, L.nopeDim, L.ropeDim, L.blockWidth)
        let nb = L.scheme.blockCount
        let tau = 1 / Double(dn + dr).squareRoot()
        // Per position: query parts per head, RoPE key, per-(block, head) K and V.
        var qNope = [[[Double]]](), qRope = [[[Double]]](), kRope = [[Double]]()
        var kN = [[[[Double]]]](repeating: [], count: nb), vN = [[[[Double]]]](repeating: [], count: nb)  // [b][pos][head]
        for p in 0..<T {
            let xp = x[(p * d)..<((p + 1) * d)]
            let cq = rmsNorm(matvec(w["q_a_proj.weight"]!, xp, out: dq), w["q_a_layernorm.weight"]!, scale: (Double(d) / Double(dq)).squareRoot())
            let q = matvec(w["q_b_proj.weight"]!, cq[...], out: h * (dn + dr))
            qNope.append((0..<h).map { Array(q[($0 * (dn + dr))..<($0 * (dn + dr) + dn)]) })
            qRope.append((0..<h).map { rope(Array(q[($0 * (dn + dr) + dn)..<(($0 + 1) * (dn + dr))]), position: p) })
            let a = matvec(w["kv_a_proj_with_mqa.weight"]!, xp, out: dc + dr)
            kRope.append(rope(Array(a[dc...]), position: p))
            for b in 0..<nb {
                let c = rmsNorm(Array(a[(b * dl)..<((b + 1) * dl)]), w[L.scheme.normName(block: b)]!, scale: (Double(d) / Double(dl)).squareRoot())
                let served = L.servedHeads(block: b)
                var ks = [[Double]](repeating: [], count: h), vs = [[Double]](repeating: [], count: h)
                for i in served {
                    let j = i - served.lowerBound
                    // Up-projection entry for output o (within the head's 2·DN) and input l.
                    func u(_ o: Int, _ l: Int) -> Double {
                        switch L.scheme.upProjection {
                        case .outputMajor(let names): return w[names[b]]![(j * 2 * dn + o) * dl + l]
                        case .inputMajorStacked(let name):
                            let outs = served.count * 2 * dn
                            return w[name]![(b * dl + l) * outs + j * 2 * dn + o]
                        }
                    }
                    ks[i] = (0..<dn).map { n in (0..<dl).reduce(0.0) { $0 + u(n, $1) * c[$1] } }
                    vs[i] = (0..<dn).map { n in (0..<dl).reduce(0.0) { $0 + u(dn + n, $1) * c[$1] } }
                }
                kN[b].append(ks); vN[b].append(vs)
            }
        }
        var y = [Double](repeating: 0, count: T * d)
        for p in 0..<T {
            var heads = [Double](repeating: 0, count: h * dn)
            for b in 0..<nb {
                for i in L.servedHeads(block: b) {
                    let keys = (0...p).map { kN[b][$0][i] + kRope[$0] }
                    let values = (0...p).map { vN[b][$0][i] }
                    let o = attend(q: qNope[p][i] + qRope[p][i], keys: keys, values: values, scale: tau)
                    for c in 0..<dn { heads[i * dn + c] += Double(L.alpha) * o[c] }
                }
            }
            let out = matvec(w["c_proj.weight"]!, heads[...], out: d)
            for c in 0..<d { y[p * d + c] = out[c] }
        }
        return y
    }

    static func grouped(_ G: GroupedLayout, _ w: [String: [Double]], _ x: [Double], _ T: Int) -> [Double] {
        let (d, h, dh, nkv) = (G.nEmbd, G.nHead, G.headDim, G.kvHeads)
        var qs = [[[Double]]](), ks = [[[Double]]](), vs = [[[Double]]]()
        for p in 0..<T {
            let xp = x[(p * d)..<((p + 1) * d)]
            let q = matvec(w["c_q.weight"]!, xp, out: h * dh)
            let k = matvec(w["c_k.weight"]!, xp, out: nkv * dh)
            let v = matvec(w["c_v.weight"]!, xp, out: nkv * dh)
            qs.append((0..<h).map { rope(Array(q[($0 * dh)..<(($0 + 1) * dh)]), position: p) })
            ks.append((0..<nkv).map { rope(Array(k[($0 * dh)..<(($0 + 1) * dh)]), position: p) })
            vs.append((0..<nkv).map { Array(v[($0 * dh)..<(($0 + 1) * dh)]) })
        }
        var y = [Double](repeating: 0, count: T * d)
        for p in 0..<T {
            var heads = [Double]()
            for i in 0..<h {
                let kv = i / G.groupSize
                heads += attend(q: qs[p][i], keys: (0...p).map { ks[$0][kv] }, values: (0...p).map { vs[$0][kv] },
                                scale: 1 / Double(dh).squareRoot())
            }
            let out = matvec(w["c_proj.weight"]!, heads[...], out: d)
            for c in 0..<d { y[p * d + c] = out[c] }
        }
        return y
    }
}
