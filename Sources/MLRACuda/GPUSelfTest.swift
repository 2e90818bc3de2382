import Foundation
import MLRACore

/// `mlra selftest --device cuda`: every variant's kernel groups, every cache dtype, batches
/// of 1 and 3 (sequences of their own lengths), lengths around every tile and split
/// boundary (1, tile ± 1, 2·tile + 3, 1031; split counts that do not divide the length),
/// the fast kernel and the device reference each against the CPU plain kernel on the
/// same cache contents (GPUValidation, Tolerance.gpuKernelAgreement).
public enum GPUSelfTest {
    public struct Case: Sendable {
        public let name: String
        public let config: AttentionConfig
        public let tp: Int
    }

    public struct Row: Sendable {
        public let name: String, dtype: StorageDType, lengths: [Int], kernel: String
        public let result: GPUValidation.Result
    }

    /// The paper's per-head shapes (h = 64, d_n 128, d_r 64, d_c 512, GQA 8 KV heads) at
    /// TP 1 and the paper's degree, plus shapes that take the other paths: a single head
    /// per group (MHA), 96 heads (two head blocks, the second partial) and head dims
    /// that are not multiples of 16 (the device reference for 16-bit caches).
    public static var cases: [Case] {
        func latent(_ v: VariantName, heads: Int = 64, tp: Int) -> Case {
            Case(name: "\(v.rawValue) h\(heads) tp\(tp)",
                 config: AttentionConfig(variant: v, nEmbd: heads * 128, nHead: heads, qLoraRank: 512, kvLoraRank: 512,
                                         qkNopeHeadDim: 128, qkRopeHeadDim: 64), tp: tp)
        }
        func grouped(_ v: VariantName, heads: Int, kv: Int, dim: Int = 128, tp: Int) -> Case {
            Case(name: "\(v.rawValue) h\(heads)/kv\(kv) d\(dim) tp\(tp)",
                 config: AttentionConfig(variant: v, nEmbd: heads * dim, nHead: heads, headDim: dim, groupSize: heads / kv), tp: tp)
        }
        return [latent(.mla, tp: 1), latent(.mla, heads: 96, tp: 1), latent(.gla2, tp: 1), latent(.gla2, tp: 2),
                latent(.mlra2, tp: 1), latent(.mlra2, tp: 2), latent(.mlra4, tp: 1), latent(.mlra4, tp: 4),
                grouped(.gqa, heads: 64, kv: 8, tp: 1), grouped(.gqa, heads: 64, kv: 8, tp: 8),
                grouped(.mqa, heads: 16, kv: 1, tp: 1), grouped(.mha, heads: 8, kv: 8, tp: 1),
                grouped(.gqa, heads: 6, kv: 2, dim: 40, tp: 1)]
    }

    /// Runs every case on `device`; `progress` gets each row as it is done.
    public static func run(device: CUDADevice, dtypes: [StorageDType] = StorageDType.allCases,
                           progress: (Row) -> Void) throws -> [Row] {
        var rows = [Row]()
        for c in cases {
            let layout = try c.config.layout()
            let shard = try layout.shard(tp: c.tp, rank: 0)
            for dtype in dtypes {
                let probe = try GPUKernelWorkload(device: device, layout: layout, shard: shard, dtype: dtype, lengths: [1],
                                                  coldCache: false)
                let t = max(probe.attention.classes.map(\.tile).max() ?? 16, 16)
                var plans: [([Int], Int?)] = [1, t - 1, t, t + 1, 2 * t + 3, GPUValidation.cpuCheckRows].map { ([$0], nil) }
                plans += [([GPUValidation.cpuCheckRows, 517, 1], nil), ([t + 1, 1, 2 * t - 1], nil)]
                plans += [([GPUValidation.cpuCheckRows], 3), ([GPUValidation.cpuCheckRows], 7), ([2 * t + 3], 2),
                          ([GPUValidation.cpuCheckRows, 2 * t + 3, 5], 5)]
                for (lengths, splits) in plans {
                    let w = try GPUKernelWorkload(device: device, layout: layout, shard: shard, dtype: dtype, lengths: lengths,
                                                  coldCache: false, tuning: GPUTuning(splits: splits))
                    let reference: [Double]
                    do { reference = try GPUValidation.cpuReference(w, lengths: lengths) } catch let e as HarnessError {
                        let r = Row(name: c.name, dtype: dtype, lengths: lengths, kernel: "cache contents",
                                    result: .init(what: "device cache vs CPU cache", maxError: .infinity, violation: e.message))
                        rows.append(r); progress(r); continue
                    }
                    let plain = try w.attention(tuning: GPUTuning(path: .plain))
                    let tol = Tolerance.gpuKernelAgreement(cache: dtype)
                    var kernels = [w.attention, plain]
                    // Groups the warp-register or wgmma kernels take are checked on the shared-memory
                    // kernel too (what they take on other devices), and on Hopper the MLA family on
                    // the two-warpgroup wgmma kernel whatever the default.
                    if w.attention.classes.contains(where: { $0.path == .warps || $0.path.isWgmma }) {
                        kernels.append(try w.attention(tuning: GPUTuning(splits: splits, path: .mma)))
                    }
                    if w.attention.classes.allSatisfy({ c in
                        (c.path == .mma || c.path == .warps || c.path == .wgmmaSolo)   // not already the default
                            && GPUAttention.wgmmaTakes(keyWidth: c.keyWidth, ropeWidth: c.ropeWidth, valueWidth: c.valueWidth,
                                                       valueIsKey: c.valueIsKey, arch: device.arch)
                    }) {
                        do { kernels.append(try w.attention(tuning: GPUTuning(splits: splits, path: .wgmma))) } catch let e as HarnessError {
                            let r = Row(name: c.name, dtype: dtype, lengths: lengths, kernel: "wgmma",
                                        result: .init(what: "wgmma kernel", maxError: .infinity, violation: e.message))
                            rows.append(r); progress(r)
                        }
                    }
                    // The query-image paths (wgmma-q, wgmma-solo-q: decode_qprep, programmatic launches,
                    // wgmma-solo-q's three warpgroups) wherever their kernels take every class.
                    for path in [GPUKernelPath.wgmmaQ, .wgmmaSoloQ] where w.attention.classes.allSatisfy({ c in
                        path == .wgmmaQ
                            ? GPUAttention.wgmmaTakes(keyWidth: c.keyWidth, ropeWidth: c.ropeWidth, valueWidth: c.valueWidth,
                                                      valueIsKey: c.valueIsKey, arch: device.arch)
                            : GPUAttention.wgmmaSoloTakes(keyWidth: c.keyWidth, ropeWidth: c.ropeWidth, valueWidth: c.valueWidth,
                                                          valueIsKey: c.valueIsKey, arch: device.arch)
                    }) {
                        // wgmma-q also with 16-token tiles (--gpu-tile 16: 4 stages for MLA).
                        for tile in path == .wgmmaQ ? [nil, 16] : [nil] as [Int?] {
                            do { kernels.append(try w.attention(tuning: GPUTuning(tile: tile, splits: splits, path: path))) } catch let e as HarnessError {
                                let r = Row(name: c.name, dtype: dtype, lengths: lengths, kernel: path.rawValue,
                                            result: .init(what: "\(path.rawValue) kernel", maxError: .infinity, violation: e.message))
                                rows.append(r); progress(r)
                            }
                        }
                    }
                    // warps-pdl (one-pass merge as a programmatic dependent) where the warp-register kernel runs on Hopper.
                    if device.arch == "sm_90a" && w.attention.classes.allSatisfy({ $0.path == .warps }) {
                        do { kernels.append(try w.attention(tuning: GPUTuning(splits: splits, path: .warpsPDL))) } catch let e as HarnessError {
                            let r = Row(name: c.name, dtype: dtype, lengths: lengths, kernel: "warps-pdl",
                                        result: .init(what: "warps-pdl kernel", maxError: .infinity, violation: e.message))
                            rows.append(r); progress(r)
                        }
                    }
                    for k in kernels {
                        let out = try GPUValidation.outputs(w, k, lengths: lengths)
                        let r = Row(name: c.name, dtype: dtype, lengths: lengths, kernel: k.summary,
                                    result: GPUValidation.compare("\(k.summary)", out, reference, tol))
                        rows.append(r); progress(r)
                    }
                }
            }
        }
        return rows
    }
}
