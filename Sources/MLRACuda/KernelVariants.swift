import MLRACore

/// Every compilation the harness makes of its kernel sources at the self-test's shapes
/// (each variant's kernel groups, every cache dtype, every path), for the NVRTC check
/// that runs without a GPU (`mlra kernels`, in CI). Shared memory is budgeted per
/// architecture as on the smallest device of it: an A100 (163 KiB per block) for sm_80
/// and up, an H100/H200 (227 KiB) for sm_90a.
public enum KernelVariants {
    public static func sharedBudget(arch: String) -> Int { arch == "sm_90a" ? 227 * 1024 : 163 * 1024 }

    /// One NVRTC compilation: a source with the macros and flags a launch compiles it with.
    public struct Compilation {
        public let source: KernelSource
        public let defines: [(String, Int)]
        public let flags: [String]
        public var label: String { "\(source.rawValue) " + defines.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
    }

    public static func all(arch: String) -> [Compilation] {
        var out = [Compilation(source: .calibrate, defines: [], flags: []), Compilation(source: .cacheFill, defines: [], flags: []),
                   Compilation(source: .layerOps, defines: [], flags: [])]
        var seen = Set<String>()
        for c in GPUSelfTest.cases {
            guard let layout = try? c.config.layout(), let shard = try? layout.shard(tp: c.tp, rank: 0) else { continue }
            let groups = layout.kernelGroups(for: shard)
            let width = layout.cacheWidth(units: shard.units.count)
            for dtype in StorageDType.allCases {
                for path in [nil, GPUKernelPath.mma, .warps, .warpsPDL, .wgmma, .wgmmaSolo, .wgmmaQ, .wgmmaSoloQ, .plain] {
                    for g in groups {
                        guard let shape = try? GPUAttention.launchShape(
                            heads: g.heads, keyWidth: g.keyWidth, ropeWidth: g.ropeWidth, valueWidth: g.valueWidth,
                            valueIsKey: g.valuesAreKeys,
                            offsets: [g.keyOffset, g.ropeOffset, g.valueOffset], rowWidth: width, dtype: dtype,
                            arch: arch, sharedBudget: sharedBudget(arch: arch), tuning: GPUTuning(path: path)) else { continue }
                        let key = shape.defines.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
                        if seen.insert(key).inserted {
                            out.append(Compilation(source: .decodeAttention, defines: shape.defines, flags: shape.flags))
                        }
                        // wgmma-q's 16-token tiles (--gpu-tile 16), as the self-test runs them.
                        if path == .wgmmaQ, let s16 = try? GPUAttention.launchShape(
                            heads: g.heads, keyWidth: g.keyWidth, ropeWidth: g.ropeWidth, valueWidth: g.valueWidth,
                            valueIsKey: g.valuesAreKeys, offsets: [g.keyOffset, g.ropeOffset, g.valueOffset], rowWidth: width,
                            dtype: dtype, arch: arch, sharedBudget: sharedBudget(arch: arch), tuning: GPUTuning(tile: 16, path: path)),
                           seen.insert(s16.defines.map { "\($0.0)=\($0.1)" }.joined(separator: " ")).inserted {
                            out.append(Compilation(source: .decodeAttention, defines: s16.defines, flags: s16.flags))
                        }
                    }
                }
            }
        }
        return out
    }
}
