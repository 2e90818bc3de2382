import CCuda
import Foundation
import MLRACore

extension StorageDType {
    /// The kernels' ELEM code for this cache dtype (CCuda.h's mlra_elem).
    var kernelElem: Int32 {
        let code = switch self { case .bf16: MLRA_ELEM_BF16; case .f16: MLRA_ELEM_F16; case .f32: MLRA_ELEM_F32 }
        return Int32(code.rawValue)
    }
}

extension KernelGroup {
    /// The values are the first key columns (the MLA family's latent): the kernels keep
    /// those columns in shared memory once (VAL_IS_KEY).
    public var valuesAreKeys: Bool { valueOffset == keyOffset && valueWidth <= keyWidth }
}

/// Which device kernel runs a class of groups.
public enum GPUKernelPath: String, CaseIterable, Sendable {
    /// bf16/f16 caches on tensor cores, scores and softmax in each warp's registers
    /// (decode_warps): groups whose value accumulators fit in a warp (value width ≤ 128).
    case warps
    /// bf16/f16 caches on tensor cores, scores through shared memory (decode_mma): any
    /// aligned group, the wide latents of MLA and GLA-2 included.
    case mma
    /// Hopper (sm_90a) only: bf16/f16 caches on wgmma, two warpgroups on one 64-row head
    /// block (decode_wgmma): the MLA family (values are the first key columns), key width a
    /// multiple of 64, value width a multiple of 128. The default there for those groups.
    case wgmma
    /// Hopper (sm_90a) only: the same wgmma tiles with each warpgroup on its own tiles, softmax
    /// and all value columns (decode_wgmma_solo): MLA-family groups whose value width is at
    /// most 256 (MLRA-4, MLRA-2, GLA-2). The default there for those groups.
    case wgmmaSolo = "wgmma-solo"
    /// decode_wgmma with the query image (QPREP): a small kernel (decode_qprep) converts the
    /// queries once per step into the 16-bit swizzled shared-memory image, each split block
    /// copies it by cp.async beside its first tiles, the splits merge in one pass
    /// (decode_combine_online), and the split kernel and the merge start as programmatic
    /// dependents of the kernel before them (docs/gpu-kernels.md).
    case wgmmaQ = "wgmma-q"
    /// decode_wgmma_solo with the query image as `wgmma-q`, and three warpgroups (each on every
    /// third tile) where the values are at most 128 wide (MLRA-4), else two (`--gpu-warps` 8, 12
    /// or 16 sets the count).
    case wgmmaSoloQ = "wgmma-solo-q"
    /// Hopper only: decode_warps with the one-pass merge (decode_combine_online) launched as its
    /// programmatic dependent, as on the -q paths (GQA and the other warp-register groups).
    case warpsPDL = "warps-pdl"
    /// f32 caches on CUDA cores (decode_f32).
    case f32
    /// The device-side reference (decode_plain): any dtype, any shape, slow.
    case plain
}

extension GPUKernelPath {
    /// The wgmma kernels (Hopper, MLA family).
    public var isWgmma: Bool { [.wgmma, .wgmmaSolo, .wgmmaQ, .wgmmaSoloQ].contains(self) }
    /// The paths that run decode_qprep before the split kernel.
    public var preparesQueries: Bool { self == .wgmmaQ || self == .wgmmaSoloQ }
    /// The paths whose splits merge in one pass (decode_combine_online), launched as a
    /// programmatic dependent of the split kernel.
    public var mergesOnline: Bool { preparesQueries || self == .warpsPDL }
}

/// Overrides of the chosen launch shape (nil: chosen from the device and the shape).
public struct GPUTuning: Equatable, Sendable {
    public var tile: Int?
    public var stages: Int?
    public var splits: Int?
    public var path: GPUKernelPath?
    public var warps: Int?
    public var headsPerBlock: Int?
    public init(tile: Int? = nil, stages: Int? = nil, splits: Int? = nil, path: GPUKernelPath? = nil, warps: Int? = nil,
                headsPerBlock: Int? = nil) {
        self.tile = tile; self.stages = stages; self.splits = splits; self.path = path; self.warps = warps
        self.headsPerBlock = headsPerBlock
    }
}

/// The decode attention of one rank's kernel groups on the GPU, for a batch of up to
/// `maxBatch` sequences of up to `maxLength` tokens (MLRACore's AttentionKernel
/// contract: queries [B][Σ heads·(DK)], outputs [B][Σ heads·DV], in group order).
///
/// Groups of equal shape form a class and share one compiled kernel and one launch;
/// a class's groups are told apart by a small device table of column offsets.
/// Per class one launch of the split-KV kernel, then (with more than one split) one
/// launch of the combine kernel.
public final class GPUAttention {
    public let device: CUDADevice
    public let dtype: StorageDType
    public let rowWidth: Int
    public let scale: Float
    public let maxBatch: Int, maxLength: Int
    public let queryCount: Int, outputCount: Int
    public private(set) var classes: [GroupClass] = []

    /// Groups of one shape and the launch chosen for them.
    public struct GroupClass {
        public let heads: Int, keyWidth: Int, ropeWidth: Int, valueWidth: Int, valueIsKey: Bool
        public let groupIndices: [Int]
        public let path: GPUKernelPath
        public let tile: Int, stages: Int, splits: Int, chunk: Int
        public let headsPerBlock: Int
        public let sharedBytes: Int
        public let threads: Int
        public let blocksPerSM: Int
        let main: CUDAFunction
        let combine: CUDAFunction
        let table: DeviceBuffer
        let partialML: DeviceBuffer?, partialAcc: DeviceBuffer?, scratch: DeviceBuffer?
        /// The query-image paths: decode_qprep and its output, [B][groups·head blocks][64·DK] 16-bit.
        let queryPrep: CUDAFunction?, queryImage: DeviceBuffer?

        public var description: String {
            "\(path.rawValue) \(heads)h×(\(keyWidth)+\(ropeWidth))→\(valueWidth)"
                + (path == .plain ? "" : " tile \(path.isWgmma ? "\(threads / 128)×" : "")\(tile)" + (path == .f32 ? "" : "×\(stages) stages") + ", \(threads / 32) warps, \(splits) split(s) of \(chunk), "
                    + "\(headsPerBlock) heads/block, \(sharedBytes / 1024) KiB shared, \(blocksPerSM) block(s)/SM")
        }
    }

    public init(device: CUDADevice, groups: [KernelGroup], rowWidth: Int, dtype: StorageDType, scale: Float,
                maxBatch: Int, maxLength: Int, tuning: GPUTuning = GPUTuning()) throws {
        self.device = device; self.dtype = dtype; self.rowWidth = rowWidth; self.scale = scale
        self.maxBatch = maxBatch; self.maxLength = maxLength
        queryCount = groups.totalQueryCount
        outputCount = groups.totalOutputCount

        // Column offsets and query/output offsets of every group.
        var rows = [[Int32]]()
        var q = 0, o = 0
        for g in groups {
            rows.append([g.keyOffset, g.ropeOffset, g.valueOffset, q, o].map { Int32($0) })
            q += g.heads * g.queryWidth
            o += g.heads * g.valueWidth
        }
        struct Key: Hashable { let h, k, r, v: Int; let vk: Bool }
        var order = [Key](), members = [Key: [Int]]()
        for (i, g) in groups.enumerated() {
            let key = Key(h: g.heads, k: g.keyWidth, r: g.ropeWidth, v: g.valueWidth, vk: g.valuesAreKeys)
            if members[key] == nil { order.append(key) }
            members[key, default: []].append(i)
        }
        for key in order {
            let idx = members[key]!
            let table = try DeviceBuffer(bytes: idx.count * 5 * 4, what: "the group table")
            try table.upload(idx.flatMap { rows[$0] })
            let offsets = idx.flatMap { [groups[$0].keyOffset, groups[$0].ropeOffset, groups[$0].valueOffset] }
            // The wgmma kernels read queries as 16-byte vectors.
            let queriesAligned = queryCount % 4 == 0 && idx.allSatisfy { rows[$0][3] % 4 == 0 }
            var classTuning = tuning
            if !queriesAligned && tuning.path == nil,
               (try Self.launchShape(
                   heads: key.h, keyWidth: key.k, ropeWidth: key.r, valueWidth: key.v, valueIsKey: key.vk, offsets: offsets,
                   rowWidth: rowWidth, dtype: dtype, arch: device.arch, sharedBudget: device.sharedPerBlockOptin, tuning: tuning).path.isWgmma) {
                classTuning.path = .mma
            }
            classes.append(try Self.plan(device: device, heads: key.h, keyWidth: key.k, ropeWidth: key.r, valueWidth: key.v,
                                         valueIsKey: key.vk, offsets: offsets, groupIndices: idx, table: table,
                                         rowWidth: rowWidth, dtype: dtype, maxBatch: maxBatch, maxLength: maxLength,
                                         tuning: classTuning))
            if !queriesAligned, let c = classes.last, c.path.isWgmma {
                throw HarnessError("the \(c.path.rawValue) kernel reads queries in 16-byte vectors; this rank's query offsets are not multiples of 4")
            }
        }
    }

    /// Device bytes this object holds (tables, partial states, reference scratch).
    public var deviceBytes: Int {
        classes.reduce(0) {
            $0 + $1.table.bytes + ($1.partialML?.bytes ?? 0) + ($1.partialAcc?.bytes ?? 0) + ($1.scratch?.bytes ?? 0)
                + ($1.queryImage?.bytes ?? 0)
        }
    }

    /// Launches every class on `device.stream`: caches is a device table of B row pointers
    /// (u64), lengths B ints; q and out as in the class comment.
    public func launch(caches: DeviceBuffer, lengths: DeviceBuffer, batch: Int, q: DeviceBuffer, out: DeviceBuffer) throws {
        try launch(caches: caches.pointer, lengths: lengths.pointer, batch: batch, q: q.pointer, out: out.pointer)
    }

    /// The same on raw device addresses (CUDABackend's step buffers).
    public func launch(caches: CUdeviceptr, lengths: CUdeviceptr, batch: Int, q: CUdeviceptr, out: CUdeviceptr) throws {
        precondition(batch <= maxBatch)
        let log2e: Float = 1.4426950408889634
        for c in classes {
            let groupsInClass = c.groupIndices.count
            let headBlocks = (c.heads + c.headsPerBlock - 1) / c.headsPerBlock
            // The query-image paths: decode_qprep, then the split kernel and decode_combine as
            // programmatic dependents (each waits for the one before it where it must).
            var queries = q
            if let prep = c.queryPrep, let image = c.queryImage {
                let pa = KernelArguments()
                pa.add(c.table.pointer).add(Int32(groupsInClass)).add(q).add(Int32(queryCount)).add(image.pointer)
                let slices = (64 * (c.keyWidth + c.ropeWidth) / 8 + 255) / 256  // QPREP_SLICES: a 16-byte chunk per thread
                try prep.launch(grid: (groupsInClass * headBlocks, slices, batch), block: 256, stream: device.stream, pa)
                queries = image.pointer
            }
            let dependent = c.queryPrep != nil && Self.programmaticLaunch
            let dependentMerge = c.path.mergesOnline && Self.programmaticLaunch
            let args = KernelArguments()
            args.add(caches).add(lengths).add(c.table.pointer).add(Int32(groupsInClass))
                .add(queries).add(Int32(queryCount)).add(out).add(Int32(outputCount))
            switch c.path {
            case .plain:
                args.add(scale).add(c.scratch!.pointer).add(Int32(maxLength))
                try c.main.launch(grid: (c.heads, groupsInClass, batch), block: c.threads, stream: device.stream, args)
                continue
            case .mma, .f32, .warps, .warpsPDL, .wgmma, .wgmmaSolo, .wgmmaQ, .wgmmaSoloQ:
                args.add(scale * log2e).add(Int32(c.splits)).add(Int32(c.chunk))
                    .add(c.partialML?.pointer ?? 0).add(c.partialAcc?.pointer ?? 0)
                try c.main.launch(grid: (groupsInClass * headBlocks, c.splits, batch), block: c.threads, shared: c.sharedBytes,
                                  stream: device.stream, dependent: dependent, args)
            }
            if c.splits > 1 {
                let comb = KernelArguments()
                comb.add(c.partialML!.pointer).add(c.partialAcc!.pointer).add(c.table.pointer).add(Int32(groupsInClass))
                    .add(Int32(c.splits)).add(out).add(Int32(outputCount))
                try c.combine.launch(grid: (c.heads * ((c.valueWidth + 31) / 32), groupsInClass, batch), block: 256,
                                     stream: device.stream, dependent: dependentMerge, comb)
            }
        }
    }

    public var summary: String { classes.map(\.description).joined(separator: "; ") }

    /// Programmatic dependent launches on the query-image paths, unless MLRA_GPU_PDL=0 (then
    /// plain stream order: the kernels' griddepcontrol instructions do nothing) or the driver
    /// lacks cuLaunchKernelEx.
    static var programmaticLaunch: Bool {
        ProcessInfo.processInfo.environment["MLRA_GPU_PDL"] != "0" && mlra_cuda.cuLaunchKernelEx != nil
    }

    // MARK: - Choosing the launch

    static let warps = 8
    /// decode_wgmma_solo's tiles in order of preference.
    static let wgmmaSoloTiles = [64, 32]
    /// decode_combine's COMBINE_MAX_SPLITS (its shared weight array).
    static let combineMaxSplits = 1024

    /// The mma kernel's warp split for `mt` 16-row tiles, or nil when none fits:
    /// score phase S_WM warps along heads, value phase O_WM, within register budget.
    static func mmaWarpSplit(mt: Int, tile: Int, valueWidth: Int) -> (sWM: Int, oWM: Int)? {
        let nw = warps
        let sWM = [8, 4, 2, 1].first { $0 <= mt && mt % $0 == 0 && nw % $0 == 0 && (tile / 8) % (nw / $0) == 0 }
        let oWM = [1, 2, 4, 8].first { w in
            guard mt % w == 0, nw % w == 0, (valueWidth / 8) % (nw / w) == 0 else { return false }
            let nt = valueWidth / 8 / (nw / w)
            return nt % 2 == 0 && (mt / w) * nt * 4 <= 128
        }
        guard let s = sWM, let o = oWM else { return nil }
        return (s, o)
    }

    static func mmaSharedBytes(mt: Int, keyWidth: Int, ropeWidth: Int, valueWidth: Int, valueIsKey: Bool, tile: Int, stages: Int) -> Int {
        let dk = keyWidth + ropeWidth
        let rows = mt * 16
        let scols = dk + (valueIsKey ? 0 : valueWidth)
        return 2 * rows * (dk + 8) + 2 * stages * tile * (scols + 8) + 4 * rows * (tile + 4) + 2 * rows * (tile + 8) + 12 * rows
    }

    /// What the kernel for one class is compiled with and launched as, before any device work.
    public struct LaunchShape {
        public let path: GPUKernelPath
        public let defines: [(String, Int)]
        public let tile: Int, stages: Int, headsPerBlock: Int, sharedBytes: Int, threads: Int
        public var flags: [String] { path == .plain ? [] : ["--use_fast_math"] }
        public var functionName: String {
            switch path {
            case .wgmmaQ: "decode_wgmma"
            case .wgmmaSoloQ: "decode_wgmma_solo"
            case .warpsPDL: "decode_warps"
            default: "decode_" + path.rawValue.replacingOccurrences(of: "-", with: "_")
            }
        }
    }

    /// The groups decode_wgmma takes (with a 16-bit, aligned cache): Hopper, values that are the
    /// first key columns, key + rope in 64-column blocks, value halves in 64-column blocks.
    public static func wgmmaTakes(keyWidth: Int, ropeWidth: Int, valueWidth: Int, valueIsKey: Bool, arch: String) -> Bool {
        arch == "sm_90a" && valueIsKey && (keyWidth + ropeWidth) % 64 == 0 && valueWidth % 128 == 0
    }

    /// The groups decode_wgmma_solo takes: as decode_wgmma, with every value column of 64 rows
    /// in one warpgroup's registers (value width at most 256, in 64-column blocks).
    public static func wgmmaSoloTakes(keyWidth: Int, ropeWidth: Int, valueWidth: Int, valueIsKey: Bool, arch: String) -> Bool {
        arch == "sm_90a" && valueIsKey && (keyWidth + ropeWidth) % 64 == 0 && valueWidth % 64 == 0 && valueWidth <= 256
    }

    /// decode_wgmma's shared memory: alignment slack, queries, STAGES pairs of tiles, the two
    /// warpgroups' P, their maxima and sums.
    static func wgmmaSharedBytes(keyWidth: Int, ropeWidth: Int, tile: Int, stages: Int) -> Int {
        let dk = keyWidth + ropeWidth
        return 1024 + 2 * 64 * dk + stages * 2 * 2 * tile * dk + 2 * 2 * 64 * tile + 4 * 4 * 64
    }

    /// decode_wgmma_solo's shared memory: alignment slack, queries, two rings of STAGES tiles,
    /// warpgroup 1's maxima and sums for the merge.
    static func wgmmaSoloSharedBytes(keyWidth: Int, ropeWidth: Int, tile: Int, stages: Int, warpgroups: Int = 2) -> Int {
        let dk = keyWidth + ropeWidth
        return 1024 + 2 * 64 * dk + warpgroups * stages * 2 * tile * dk + (warpgroups - 1) * 2 * 4 * 64
    }

    /// Chooses the path, tile, stages and warp split for a class within `sharedBudget` bytes
    /// of shared memory per block (the device's opt-in limit) on a device of architecture
    /// `arch` (CUDADevice.arch: "sm_90a" has wgmma).
    public static func launchShape(heads: Int, keyWidth: Int, ropeWidth: Int, valueWidth: Int, valueIsKey: Bool,
                                   offsets: [Int], rowWidth: Int, dtype: StorageDType, arch: String, sharedBudget: Int,
                                   tuning: GPUTuning) throws -> LaunchShape {
        let base: [(String, Int)] = [("ELEM", Int(dtype.kernelElem)), ("GROUP_HEADS", heads), ("KEY_W", keyWidth), ("ROPE_W", ropeWidth),
                                     ("VAL_W", valueWidth), ("ROW_W", rowWidth)]
        let aligned = keyWidth % 16 == 0 && ropeWidth % 16 == 0 && valueWidth % 16 == 0 && rowWidth % 8 == 0
            && offsets.allSatisfy { $0 % 8 == 0 }
        // The warp-register kernel holds DK/16·4 query and DV/8·4 accumulator registers per thread.
        let warpFits = (keyWidth + ropeWidth) / 16 * 4 + valueWidth / 8 * 4 <= 112
        let wgmmaFits = wgmmaTakes(keyWidth: keyWidth, ropeWidth: ropeWidth, valueWidth: valueWidth, valueIsKey: valueIsKey, arch: arch)
        let soloFits = wgmmaSoloTakes(keyWidth: keyWidth, ropeWidth: ropeWidth, valueWidth: valueWidth, valueIsKey: valueIsKey, arch: arch)
        // On Hopper the MLA family takes wgmma: 1.1-1.9x faster than warps/mma at 128K-2M on an
        // H200, and the solo layout where its values fit one warpgroup (docs/gpu-kernels.md).
        let path = tuning.path ?? (dtype == .f32 ? .f32 : !aligned ? .plain : soloFits ? .wgmmaSolo : wgmmaFits ? .wgmma : warpFits ? .warps : .mma)
        if (path == .wgmma || path == .wgmmaQ) && !wgmmaFits {
            throw HarnessError("the wgmma kernel needs Hopper (sm_90a; this device is \(arch)) and an MLA-family group: values that are "
                               + "the first key columns, key + rope a multiple of 64, value width a multiple of 128 "
                               + "(key \(keyWidth)+\(ropeWidth), value \(valueWidth))")
        }
        if (path == .wgmmaSolo || path == .wgmmaSoloQ) && !soloFits {
            throw HarnessError("the wgmma-solo kernel needs Hopper (sm_90a; this device is \(arch)) and an MLA-family group whose values "
                               + "fit one warpgroup: values that are the first key columns, key + rope a multiple of 64, value width "
                               + "a multiple of 64 and at most 256 (key \(keyWidth)+\(ropeWidth), value \(valueWidth))")
        }
        if path == .warpsPDL && arch != "sm_90a" {
            throw HarnessError("the warps-pdl path needs Hopper (sm_90a; this device is \(arch)): programmatic dependent launches")
        }
        if (path == .warps || path == .warpsPDL) && !warpFits {
            throw HarnessError("the warp-register kernel holds at most 112 query + accumulator registers per thread; "
                               + "key \(keyWidth)+\(ropeWidth), value \(valueWidth) need more (use --gpu-kernel mma)")
        }
        if (path == .mma || path == .warps || path == .warpsPDL || path.isWgmma) && (dtype == .f32 || !aligned) {
            throw HarnessError("the tensor-core kernel needs a 16-bit cache, widths that are multiples of 16 and "
                               + "column offsets that are multiples of 8 (\(heads) heads, key \(keyWidth), rope \(ropeWidth), value \(valueWidth), row \(rowWidth))")
        }
        if path == .f32 && dtype != .f32 { throw HarnessError("the f32 kernel needs an f32 cache (this one is \(dtype))") }
        let threads = 256
        switch path {
        case .plain:
            return LaunchShape(path: .plain, defines: base, tile: 0, stages: 0, headsPerBlock: 1, sharedBytes: 0, threads: threads)
        case .warps, .warpsPDL:
            let headsPerBlock = min(heads, tuning.headsPerBlock ?? 64)
            var mt = 1
            while mt * 16 < headsPerBlock { mt *= 2 }
            // Defaults measured on an H200 at 512K tokens (benchmarks/gpu_tune.sh; docs/gpu-kernels.md):
            // MLRA-4's 64 heads (4 head tiles) run best with 8 warps, tile 128, 2 stages (121.8 µs
            // against 136.8 with 4 warps, tile 64, 3 stages); GQA's 8 heads with 4 warps, tile 128,
            // 2 stages (97.0 µs against 125.5 with tile 64, 3 stages).
            let nwarps = tuning.warps ?? (mt >= 2 ? 8 : 4)
            guard nwarps % mt == 0, nwarps <= 16 else {
                throw HarnessError("--gpu-warps \(nwarps) must be a multiple of the \(mt) head tiles, at most 16")
            }
            let wsplit = nwarps / mt
            let dk = keyWidth + ropeWidth
            let srow = dk + (valueIsKey ? 0 : valueWidth) + 8
            guard tuning.tile.map({ $0 % (16 * wsplit) == 0 }) ?? true else {
                throw HarnessError("--gpu-tile \(tuning.tile!) must be a multiple of 16 × \(wsplit) (the warps that share a head tile)")
            }
            for t in tuning.tile.map({ [$0] }) ?? [128, 64, 32] where t % (16 * wsplit) == 0 {
                for s in tuning.stages.map({ [$0] }) ?? [2, 3] {
                    let shared = max(2 * s * t * srow, 4 * wsplit * mt * 16 * (2 + valueWidth))
                    guard shared <= sharedBudget else { continue }
                    let defines = base + [("FAST_WARP", 1), ("HEADS", headsPerBlock), ("MT", mt), ("TN", t), ("STAGES", s),
                                          ("NWARPS", nwarps), ("VAL_IS_KEY", valueIsKey ? 1 : 0)] + (path == .warpsPDL ? [("PDL_COMBINE", 1)] : [])
                    return LaunchShape(path: path, defines: defines, tile: t, stages: s, headsPerBlock: headsPerBlock,
                                       sharedBytes: shared, threads: 32 * nwarps)
                }
            }
            throw HarnessError("no tile of the warp-register kernel fits \(heads) heads × key \(dk), value \(valueWidth) "
                               + "in \(sharedBudget / 1024) KiB of shared memory with \(nwarps) warps")
        case .wgmma, .wgmmaQ:
            // Tile = tokens per warpgroup and iteration (a pair of tiles per block): 64 where two
            // stages fit, else 32 (MLA's 576 columns). Measured on an H200 at 512K
            // (docs/gpu-kernels.md): GLA-2 126.3 µs at 64×2 against 140.7 at 32×2; MLRA-4 90.5-94.7
            // whatever the tile and stages.
            // 16-token tiles only when asked (--gpu-tile 16): MLA then fits 4 stages, 3 pairs in flight
            // instead of 1 (decode_wgmma waits for a whole pair before it can refill a stage).
            guard tuning.tile.map({ $0 == 16 || $0 == 32 || $0 == 64 }) ?? true else {
                throw HarnessError("--gpu-tile of the wgmma kernel is 16, 32 or 64, got \(tuning.tile!)")
            }
            if let h = tuning.headsPerBlock, h != 64 { throw HarnessError("the wgmma kernel takes 64 heads per block, got \(h)") }
            for t in tuning.tile.map({ [$0] }) ?? [64, 32] {
                for s in tuning.stages.map({ [$0] }) ?? (t == 16 ? [4, 3, 2] : [3, 2]) {
                    let shared = wgmmaSharedBytes(keyWidth: keyWidth, ropeWidth: ropeWidth, tile: t, stages: s)
                    guard shared <= sharedBudget else { continue }
                    let defines = base + [("FAST_WGMMA", 1), ("HEADS", 64), ("MT", 4), ("TN", t), ("STAGES", s), ("NWARPS", 8),
                                          ("VAL_IS_KEY", 1)] + (path == .wgmmaQ ? [("QPREP", 1)] : [])
                    return LaunchShape(path: path, defines: defines, tile: t, stages: s, headsPerBlock: 64, sharedBytes: shared,
                                       threads: 256)
                }
            }
            throw HarnessError("no tile of the wgmma kernel fits key \(keyWidth)+\(ropeWidth) in \(sharedBudget / 1024) KiB of shared memory"
                               + (tuning.tile.map { " with --gpu-tile \($0)" } ?? ""))
        case .wgmmaSolo, .wgmmaSoloQ:
            // Tile = tokens per warpgroup and iteration; the most stages that fit (warpgroups ≥ 1
            // merge their accumulators through their own rings, which must hold 64 × value-width f32).
            guard tuning.tile.map({ $0 == 32 || $0 == 64 }) ?? true else {
                throw HarnessError("--gpu-tile of the \(path.rawValue) kernel is 32 or 64, got \(tuning.tile!)")
            }
            if let h = tuning.headsPerBlock, h != 64 { throw HarnessError("the \(path.rawValue) kernel takes 64 heads per block, got \(h)") }
            // Warpgroups: two on wgmma-solo; on wgmma-solo-q three where the values are at most 128
            // wide (ptxas, NVRTC 13.0: MLRA-4 139 registers of the 168 that 384 threads leave, no
            // spills; GLA-2's 256-wide values spill at three), else two.
            var warpgroups = 2
            if path == .wgmmaSoloQ {
                if let w = tuning.warps {
                    guard [8, 12, 16].contains(w) else { throw HarnessError("--gpu-warps of the wgmma-solo-q kernel is 8, 12 or 16 (2-4 warpgroups), got \(w)") }
                    warpgroups = w / 4
                } else {
                    warpgroups = valueWidth <= 128 ? 3 : 2
                }
            }
            let dk = keyWidth + ropeWidth
            for t in tuning.tile.map({ [$0] }) ?? Self.wgmmaSoloTiles {
                for s in tuning.stages.map({ [$0] }) ?? [6, 5, 4, 3, 2] where s >= 2 && s * t * dk * 2 >= 64 * valueWidth * 4 {
                    let shared = wgmmaSoloSharedBytes(keyWidth: keyWidth, ropeWidth: ropeWidth, tile: t, stages: s, warpgroups: warpgroups)
                    guard shared <= sharedBudget else { continue }
                    let defines = base + [("FAST_WGMMA", 1), ("WG_SOLO", 1), ("HEADS", 64), ("MT", 4), ("TN", t), ("STAGES", s),
                                          ("NWARPS", 4 * warpgroups), ("VAL_IS_KEY", 1)] + (path == .wgmmaSoloQ ? [("QPREP", 1)] : [])
                    return LaunchShape(path: path, defines: defines, tile: t, stages: s, headsPerBlock: 64, sharedBytes: shared,
                                       threads: 128 * warpgroups)
                }
            }
            throw HarnessError("no tile of the wgmma-solo kernel fits key \(keyWidth)+\(ropeWidth), value \(valueWidth) in "
                               + "\(sharedBudget / 1024) KiB of shared memory" + (tuning.tile.map { " with --gpu-tile \($0)" } ?? ""))
        case .mma:
            // Heads per block: all of the group's, up to 64 (beyond that the value accumulators
            // leave the registers); MT is a power of two so that the softmax's threads per row are too.
            let headsPerBlock = min(heads, tuning.headsPerBlock ?? 64)
            var mt = 1
            while mt * 16 < headsPerBlock { mt *= 2 }
            for t in tuning.tile.map({ [$0] }) ?? [64, 32, 16] {
                guard t % 16 == 0, let split = mmaWarpSplit(mt: mt, tile: t, valueWidth: valueWidth), 256 % (mt * 16) == 0,
                      (t / (256 / (mt * 16))) % 2 == 0 else { continue }
                for s in tuning.stages.map({ [$0] }) ?? [3, 2] where s >= 2 {
                    let shared = mmaSharedBytes(mt: mt, keyWidth: keyWidth, ropeWidth: ropeWidth, valueWidth: valueWidth,
                                                valueIsKey: valueIsKey, tile: t, stages: s)
                    guard shared <= sharedBudget else { continue }
                    let defines = base + [("FAST_MMA", 1), ("HEADS", headsPerBlock), ("MT", mt), ("TN", t), ("STAGES", s),
                                          ("NWARPS", warps), ("S_WM", split.sWM), ("O_WM", split.oWM), ("VAL_IS_KEY", valueIsKey ? 1 : 0)]
                    return LaunchShape(path: .mma, defines: defines, tile: t, stages: s, headsPerBlock: headsPerBlock,
                                       sharedBytes: shared, threads: threads)
                }
            }
            throw HarnessError("no tile of the tensor-core kernel fits \(heads) heads × key \(keyWidth)+\(ropeWidth), value \(valueWidth) "
                               + "in \(sharedBudget / 1024) KiB of shared memory" + (tuning.tile.map { " with --gpu-tile \($0)" } ?? ""))
        case .f32:
            let headsPerBlock = min(heads, 16)
            let tile = tuning.tile ?? 32
            let dk = keyWidth + ropeWidth
            let shared = 4 * (headsPerBlock * dk + tile * (dk + valueWidth + 1) + headsPerBlock * tile + 3 * headsPerBlock)
            guard shared <= sharedBudget else {
                throw HarnessError("the f32 kernel's tile of \(tile) rows × \(dk + valueWidth) columns does not fit in shared memory")
            }
            return LaunchShape(path: .f32, defines: base + [("FAST_F32", 1), ("HB", headsPerBlock), ("TN", tile), ("NTHREADS", threads)],
                               tile: tile, stages: 0, headsPerBlock: headsPerBlock, sharedBytes: shared, threads: threads)
        }
    }

    static func plan(device: CUDADevice, heads: Int, keyWidth: Int, ropeWidth: Int, valueWidth: Int, valueIsKey: Bool,
                     offsets: [Int], groupIndices: [Int], table: DeviceBuffer, rowWidth: Int, dtype: StorageDType,
                     maxBatch: Int, maxLength: Int, tuning: GPUTuning) throws -> GroupClass {
        let shape = try launchShape(heads: heads, keyWidth: keyWidth, ropeWidth: ropeWidth, valueWidth: valueWidth,
                                    valueIsKey: valueIsKey, offsets: offsets, rowWidth: rowWidth, dtype: dtype, arch: device.arch,
                                    sharedBudget: device.sharedPerBlockOptin, tuning: tuning)
        let compiler = KernelCompiler.shared
        let arch = device.arch
        let path = shape.path, defines = shape.defines, tile = shape.tile, stages = shape.stages
        let headsPerBlock = shape.headsPerBlock, shared = shape.sharedBytes, threads = shape.threads
        let fast = path != .plain
        let flags = shape.flags
        let main = try compiler.function(shape.functionName, in: .decodeAttention, arch: arch, defines: defines, flags: flags)
        // The query-image paths and warps-pdl merge the splits in one pass (decode_combine_online).
        let combine = try compiler.function(path.mergesOnline ? "decode_combine_online" : "decode_combine", in: .decodeAttention,
                                            arch: arch, defines: defines, flags: flags)
        if shared > 48 * 1024 { try main.setMaxDynamicShared(shared) }

        guard fast else {
            let scratchBytes = maxBatch * groupIndices.count * heads * maxLength * 4
            try device.checkFits(bytes: scratchBytes, what: "the reference kernel's scores")
            let scratch = try DeviceBuffer(bytes: scratchBytes, what: "the reference kernel's scores")
            return GroupClass(heads: heads, keyWidth: keyWidth, ropeWidth: ropeWidth, valueWidth: valueWidth, valueIsKey: valueIsKey,
                              groupIndices: groupIndices, path: .plain, tile: 0, stages: 0, splits: 1, chunk: maxLength,
                              headsPerBlock: 1, sharedBytes: 0, threads: threads, blocksPerSM: 1, main: main, combine: combine,
                              table: table, partialML: nil, partialAcc: nil, scratch: scratch, queryPrep: nil, queryImage: nil)
        }

        // Split-KV: enough blocks to fill every SM once at the kernel's occupancy, no split shorter than a tile.
        var regs: Int32 = 0
        _ = mlra_cuda.cuFuncGetAttribute!(&regs, 4 /* CU_FUNC_ATTRIBUTE_NUM_REGS */, main.function)
        let byRegs = 65536 / max(1, Int(regs) * threads)
        let bySmem = device.sharedPerSM / (shared + 1024)
        let blocksPerSM = max(1, min(byRegs, bySmem, 8))
        let headBlocks = (heads + headsPerBlock - 1) / headsPerBlock
        let blocksPerSplit = maxBatch * groupIndices.count * headBlocks
        // A split covers whole iterations: the wgmma kernels take a tile per warpgroup per iteration.
        let step = path.isWgmma ? (threads / 128) * tile : tile
        let tiles = (maxLength + step - 1) / step
        var splits = tuning.splits ?? max(1, (device.smCount * blocksPerSM + blocksPerSplit - 1) / blocksPerSplit)
        splits = max(1, min(splits, tiles, combineMaxSplits))
        let chunk = ((tiles + splits - 1) / splits) * step
        splits = (maxLength + chunk - 1) / chunk
        var ml: DeviceBuffer? = nil, acc: DeviceBuffer? = nil
        if splits > 1 {
            let states = maxBatch * groupIndices.count * heads * splits
            ml = try DeviceBuffer(bytes: states * 2 * 4, what: "split-KV partial states")
            acc = try DeviceBuffer(bytes: states * valueWidth * 4, what: "split-KV partial accumulators")
        }
        var prep: CUDAFunction? = nil, image: DeviceBuffer? = nil
        if path.preparesQueries {
            prep = try compiler.function("decode_qprep", in: .decodeAttention, arch: arch, defines: defines, flags: flags)
            image = try DeviceBuffer(bytes: blocksPerSplit * 64 * (keyWidth + ropeWidth) * 2, what: "the query image")  // batch × blocks
        }
        return GroupClass(heads: heads, keyWidth: keyWidth, ropeWidth: ropeWidth, valueWidth: valueWidth, valueIsKey: valueIsKey,
                          groupIndices: groupIndices, path: path, tile: tile, stages: stages, splits: splits, chunk: chunk,
                          headsPerBlock: headsPerBlock, sharedBytes: shared, threads: threads, blocksPerSM: blocksPerSM,
                          main: main, combine: combine, table: table, partialML: ml, partialAcc: acc, scratch: nil,
                          queryPrep: prep, queryImage: image)
    }
}
