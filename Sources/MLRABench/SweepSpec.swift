import Foundation
import MLRACore

/// The decode scopes a sweep can time (all sharded over the TP group):
/// kernel = attention over the cache only (as the paper times it);
/// layer = projections, cache append, attention, output projection, all-reduce;
/// model = n_layer pre-norm attention + SwiGLU layers, final norm, tied lm_head, logits gathered.
public enum Scope: String, CaseIterable, Codable, Sendable { case kernel, layer, model }

/// Where a configuration's attention kernel runs (the commands' --device, the sweep's
/// --devices): this rank's CPU cores, or the GPU the rank binds (node-local rank mod
/// visible GPUs; Sources/MLRACuda).
public enum DeviceKind: String, CaseIterable, Codable, Sendable { case cpu, cuda }

/// The library that performs a cuda configuration's all-reduces (`--collective`): `mpi`
/// (MPI_Allreduce: on device pointers where the MPI library is CUDA-aware, else staged
/// through pinned host memory) or `nccl` (ncclAllReduce on the device's stream). cpu
/// configurations always use MPI.
public enum Collective: String, CaseIterable, Codable, Sendable { case mpi, nccl }

/// A sweep's grid as JSON (the spec file format, documented in the README):
///
///     {"defaults": {"head_dim": 64, "warmup": 3, "steps": 20, ...},
///      "grids": [{"variants": ["mla", "mlra4"], "tp": [1, 2, 4], "contexts": [4096],
///                 "kv_ranks": [512], "heads": [16], "kv_dtypes": ["bf16"], "batch": [1],
///                 "scopes": ["kernel", "layer"], "threads": [1], "devices": ["cpu", "cuda"]}, ...]}
///
/// Each grid is a cartesian product; keys a grid leaves out come from
/// "defaults", then from `Grid.fallback`. Several grids let one spec pair
/// variants with their own TP degrees (the paper's TP×DP layouts).
public struct SweepSpec: Codable, Sendable {
    public var defaults: Grid
    public var grids: [Grid]
    /// How often every configuration is measured (`--repeats`; default 1): all
    /// configurations once, then all again, so drift of the machine over the run hits
    /// every variant alike instead of the ones measured last.
    public var repeats: Int?

    public init(defaults: Grid = Grid(), grids: [Grid]) { self.defaults = defaults; self.grids = grids }

    /// Most repeats a sweep may ask for (each is a full pass over the grid).
    public static let maxRepeats = 1000

    /// The repeats this spec asks for, checked.
    public func checkedRepeats() throws -> Int {
        let r = repeats ?? 1
        guard r >= 1, r <= Self.maxRepeats else {
            throw HarnessError("repeats is \(r); it must lie in 1...\(Self.maxRepeats)")
        }
        return r
    }

    public struct Grid: Codable, Sendable {
        public var variants: [VariantName]?
        public var tp: [Int]?
        public var contexts: [Int]?
        public var kvRanks: [Int]?
        public var heads: [Int]?
        public var dtypes: [String]?
        public var batch: [Int]?
        public var scopes: [Scope]?
        public var threads: [Int]?
        public var devices: [DeviceKind]?
        public var headDim: Int?, ropeDim: Int?, qLoraRank: Int?, kvHeads: Int?, nEmbd: Int?
        public var nLayer: Int?, intermediateSize: Int?, vocabSize: Int?
        public var warmup: Int?, steps: Int?, coldCache: Bool?
        /// `--math` of the cpu configurations' kernel (one value per grid).
        public var math: KernelMath?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case variants, tp, contexts, kvRanks = "kv_ranks", heads, dtypes = "kv_dtypes", batch, scopes, threads, devices
            case headDim = "head_dim", ropeDim = "rope_dim", qLoraRank = "q_lora_rank", kvHeads = "kv_heads", nEmbd = "n_embd"
            case nLayer = "n_layer", intermediateSize = "intermediate_size", vocabSize = "vocab_size"
            case warmup, steps, coldCache = "cold_cache", math
        }

        public init() {}

        /// The keys a grid (or "defaults") may have, as the spec file spells them.
        public static let keys = CodingKeys.allCases.map(\.rawValue)
        /// Keys renamed to their flag's name (`--kv-dtypes`), with the old spelling spec
        /// files written before still use: read, with a warning.
        public static let renamedKeys: KeyRenames = ["kv_dtypes": "dtypes"]

        /// Every key from `self`, else from `base`.
        public func over(_ base: Grid) -> Grid {
            var g = self
            g.variants = variants ?? base.variants; g.tp = tp ?? base.tp; g.contexts = contexts ?? base.contexts
            g.kvRanks = kvRanks ?? base.kvRanks; g.heads = heads ?? base.heads; g.dtypes = dtypes ?? base.dtypes
            g.batch = batch ?? base.batch; g.scopes = scopes ?? base.scopes; g.threads = threads ?? base.threads
            g.devices = devices ?? base.devices
            g.headDim = headDim ?? base.headDim; g.ropeDim = ropeDim ?? base.ropeDim; g.qLoraRank = qLoraRank ?? base.qLoraRank
            g.kvHeads = kvHeads ?? base.kvHeads; g.nEmbd = nEmbd ?? base.nEmbd; g.nLayer = nLayer ?? base.nLayer
            g.intermediateSize = intermediateSize ?? base.intermediateSize; g.vocabSize = vocabSize ?? base.vocabSize
            g.warmup = warmup ?? base.warmup; g.steps = steps ?? base.steps; g.coldCache = coldCache ?? base.coldCache
            g.math = math ?? base.math
            return g
        }

        /// The values every unspecified key takes.
        public static var fallback: Grid {
            var g = Grid()
            g.variants = VariantName.allCases; g.tp = [1]; g.contexts = [4096]; g.kvRanks = [512]; g.heads = [16]
            g.dtypes = ["bf16"]; g.batch = [1]; g.scopes = [.kernel]; g.threads = [1]; g.devices = [.cpu]
            g.headDim = 128; g.ropeDim = 64; g.qLoraRank = 1536; g.kvHeads = 8
            g.nLayer = 2; g.intermediateSize = 2048; g.vocabSize = 4096
            g.warmup = 3; g.steps = 20; g.coldCache = true; g.math = .f32
            return g
        }
    }

    public static func load(path: String) throws -> SweepSpec {
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("\(path): cannot read spec file") }
        return try StrictJSON.decode(SweepSpec.self, from: data, path: path, kind: "spec", check: { try checkKeys($0, path: path) },
                                     renames: Grid.renamedKeys)
    }

    /// The known key closest to `key` in edit distance, if it is close enough to be a slip
    /// (at most a third of its letters changed): "head" → "heads", "context" → "contexts".
    static func nearest(_ key: String, in known: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var previous = row[0]
                row[0] = i + 1
                for (j, cb) in b.enumerated() {
                    let substitution = previous + (ca == cb ? 0 : 1)
                    previous = row[j + 1]
                    row[j + 1] = min(substitution, row[j] + 1, row[j + 1] + 1)
                }
            }
            return row[b.count]
        }
        let k = Array(key.lowercased())
        guard let best = known.map({ ($0, distance(k, Array($0))) }).min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(1, k.count / 3) ? best.0 : nil
    }

    /// The decoder ignores keys it does not know, so a misspelt key ("variant",
    /// "context") would silently run the defaults: every key of the spec, of
    /// "defaults" and of each grid must be one the format defines.
    static func checkKeys(_ tree: StrictJSON.Value, path: String) throws {
        guard let root = tree.members else { return }   // the decoder reports the wrong type
        let known = Grid.keys
        func check(_ members: [StrictJSON.Member], _ prefix: String, _ allowed: [String]) throws {
            let old = allowed == known ? Grid.renamedKeys : [:]
            if let key = members.map(\.key).first(where: { !allowed.contains($0) && !old.values.contains($0) }) {
                let guess = nearest(key, in: allowed).map { "did you mean '\($0)'? " } ?? ""
                throw HarnessError("\(path): spec key '\(prefix)\(SafeTensorsFile.printable(key))' is unknown; \(guess)"
                                   + "the keys are \(allowed.joined(separator: ", "))")
            }
            try RenamedKeys.check(.object(members), path: path, kind: "spec object '\(prefix.dropLast())'", old)
            for (name, was) in old.sorted(by: { $0.key < $1.key }) where members.contains(where: { $0.key == was }) {
                FileHandle.standardError.write(Data("mlra: warning: \(path): spec key '\(prefix)\(was)' is deprecated; use '\(name)'\n".utf8))
            }
        }
        try check(root, "", ["defaults", "grids", "repeats"])
        if let defaults = tree["defaults"]?.members { try check(defaults, "defaults.", known) }
        if case .array(let grids)? = tree["grids"] {
            for (i, grid) in grids.enumerated() { if let g = grid.members { try check(g, "grids.\(i).", known) } }
        }
    }

    /// This spec with every default in effect written out: "defaults" over `Grid.fallback`
    /// and the repeat count (what --print-spec shows). n_embd stays out when the spec leaves
    /// it to follow heads × head_dim.
    public func inEffect() -> SweepSpec {
        var s = self
        s.defaults = defaults.over(.fallback)
        s.repeats = repeats ?? 1
        return s
    }

    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Most configurations a spec may expand to, over all its grids together
    /// (counted before anything is expanded: 100 grids just under a per-grid cap
    /// once took 27 s and 2.8 GB per rank before the first configuration ran).
    public static let maxConfigurations = 100_000

    /// Expands the grids into configurations (in a fixed order), each either runnable
    /// or carrying the reason it is skipped. Every grid is resolved and checked, and
    /// the configurations of all grids counted, before any grid is expanded.
    /// `maxThreads` bounds the thread counts (by default the node's cores).
    public func configurations(worldSize: Int, maxThreads: Int = WorkerPool.coresOnline) throws -> [SweepConfig] {
        guard !grids.isEmpty else { throw HarnessError("the sweep spec has no grids") }
        let resolved = try grids.indices.map { try resolve($0, maxThreads: maxThreads) }
        let total = resolved.reduce(0.0) { $0 + $1.combinations }
        guard total <= Double(Self.maxConfigurations) else {
            throw HarnessError(String(format: "the spec's %d grid%@ expand to %.0f configurations; at most %d are supported in total",
                                      grids.count, grids.count == 1 ? "" : "s", total, Self.maxConfigurations))
        }
        var out = [SweepConfig]()
        var seen = Set<String>()   // keys already expanded (a set: large grids stay linear)
        for (g, dtypes) in resolved.map({ ($0.grid, $0.dtypes) }) {
            for device in g.devices! { for variant in g.variants! { for scope in g.scopes! { for tp in g.tp! { for heads in g.heads! {
                for kvRank in (variant.isLatent ? g.kvRanks! : [0]) { for dtype in dtypes { for context in g.contexts! {
                    // One host thread drives a GPU: --threads does not multiply cuda configurations.
                    for batch in g.batch! { for threads in (device == .cpu ? g.threads! : [1]) {
                        let c = SweepConfig(variant: variant, scope: scope, tp: tp, context: context, batch: batch, heads: heads,
                                            headDim: g.headDim!, ropeDim: variant.isLatent ? g.ropeDim! : 0, kvRank: kvRank,
                                            qLoraRank: g.qLoraRank!,
                                            kvHeads: LayerShape.kvHeads(of: variant, heads: heads, .ofGQA(g.kvHeads!)),
                                            nEmbd: g.nEmbd ?? heads * g.headDim!, dtype: dtype, threads: threads,
                                            nLayer: scope == .model ? g.nLayer! : 1, intermediateSize: g.intermediateSize!,
                                            vocabSize: g.vocabSize!, warmup: g.warmup!, steps: g.steps!,
                                            coldCache: g.coldCache!, math: g.math!, worldSize: worldSize, device: device)
                        if seen.insert(c.key).inserted { out.append(c) }
                    } }
                } } }
            } } } } }
        }
        return out
    }

    /// Grid `index` with every key filled in and checked, its dtypes, and how many
    /// configurations it expands to (a Double: the product of list lengths cannot overflow).
    func resolve(_ index: Int, maxThreads: Int) throws -> (grid: Grid, dtypes: [StorageDType], combinations: Double) {
        let g = grids[index].over(defaults).over(.fallback)
        // An empty list would expand to no configuration and the sweep would "succeed" measuring nothing.
        for (name, count) in [("variants", g.variants!.count), ("kv_dtypes", g.dtypes!.count), ("scopes", g.scopes!.count),
                                 ("devices", g.devices!.count)] where count == 0 {
            throw HarnessError("grid \(index): '\(name)' is empty")
        }
        let dtypes = try g.dtypes!.map { name in
            guard let d = StorageDType(rawValue: name.lowercased()) else {
                let shown = String(name.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) }.prefix(40))
                throw HarnessError("unknown dtype '\(shown)'; expected one of f32, f16, bf16")
            }
            return d
        }
        for (name, list) in [("tp", g.tp!), ("contexts", g.contexts!), ("kv_ranks", g.kvRanks!), ("heads", g.heads!),
                             ("batch", g.batch!), ("threads", g.threads!)] {
            guard !list.isEmpty else { throw HarnessError("grid \(index): '\(name)' is empty") }
            for v in list where v < 1 { throw HarnessError("grid \(index): '\(name)' has \(v); values must be at least 1") }
        }
        for (name, v) in [("head_dim", g.headDim!), ("rope_dim", g.ropeDim!), ("q_lora_rank", g.qLoraRank!), ("kv_heads", g.kvHeads!),
                          ("n_layer", g.nLayer!), ("intermediate_size", g.intermediateSize!), ("vocab_size", g.vocabSize!),
                          ("steps", g.steps!)] where v < 1 {
            throw HarnessError("grid \(index): '\(name)' is \(v); it must be at least 1")
        }
        guard g.warmup! >= 0 else { throw HarnessError("grid \(index): 'warmup' must be at least 0") }
        if g.math == .bf16 && g.devices!.contains(.cpu) && !ProductMath.bf16.isSupported {
            throw HarnessError("grid \(index): 'math' bf16 needs AVX-512 BF16, which this CPU lacks")
        }
        for t in g.threads! { try WorkerPool.checkThreads(t, "grid \(index): 'threads'", cores: maxThreads) }
        // Absurd values are refused before any size product can overflow an Int.
        let limits: [(String, [Int], Int)] = [
            ("tp", g.tp!, maxTPDegree), ("contexts", g.contexts!, 1 << 40), ("kv_ranks", g.kvRanks!, 1 << 24), ("heads", g.heads!, 1 << 20),
            ("batch", g.batch!, 1 << 20), ("head_dim", [g.headDim!], 1 << 20),
            ("rope_dim", [g.ropeDim!], 1 << 20), ("q_lora_rank", [g.qLoraRank!], 1 << 24), ("kv_heads", [g.kvHeads!], 1 << 20),
            ("n_embd", g.nEmbd.map { [$0] } ?? [], 1 << 24), ("n_layer", [g.nLayer!], 1 << 12),
            ("intermediate_size", [g.intermediateSize!], 1 << 26), ("vocab_size", [g.vocabSize!], 1 << 26),
            ("warmup", [g.warmup!], TimingProtocol.maxSteps), ("steps", [g.steps!], TimingProtocol.maxSteps),
        ]
        for (name, list, limit) in limits { for v in list where v > limit {
            throw HarnessError("grid \(index): '\(name)' has \(v); the largest supported value is \(limit)")
        } }
        let combinations = [g.variants!.count, g.scopes!.count, g.tp!.count, g.heads!.count, g.kvRanks!.count, dtypes.count,
                            g.contexts!.count, g.batch!.count, g.threads!.count, g.devices!.count].reduce(1.0) { $0 * Double($1) }
        // Bytes of the largest configuration (Double): the cache at the longest context plus all weights.
        let width = Double(g.heads!.max()!) * 2 * Double(g.headDim!) + Double(g.kvRanks!.max()!) + Double(g.ropeDim!)
        let embd = Double(g.nEmbd ?? g.heads!.max()! * g.headDim!)
        let tokens = Double(g.contexts!.max()!) + Double(g.warmup!) + Double(g.steps!) + 8
        let bytes = 4 * Double(g.nLayer!) * (tokens * Double(g.batch!.max()!) * width
                                             + embd * (Double(g.qLoraRank!) + width * 3 + 3 * Double(g.intermediateSize!)))
            + 4 * embd * Double(g.vocabSize!)
        guard bytes <= 72_057_594_037_927_936 else {
            throw HarnessError(String(format: "grid %d: its largest configuration would need about %.3g bytes; at most 2^56 are supported", index, bytes))
        }
        return (g, dtypes, combinations)
    }
}

/// One configuration of a sweep: everything that decides what is timed.
public struct SweepConfig: Sendable {
    public let variant: VariantName, scope: Scope
    public let tp: Int, context: Int, batch: Int, heads: Int, headDim: Int, ropeDim: Int, kvRank: Int, qLoraRank: Int
    public let kvHeads: Int, nEmbd: Int, dtype: StorageDType, threads: Int
    public let nLayer: Int, intermediateSize: Int, vocabSize: Int
    public let warmup: Int, steps: Int, coldCache: Bool
    /// The CPU kernel's `--math`; what it runs is `kernelMath`.
    public let math: KernelMath
    public let worldSize: Int
    /// Where the kernel runs (every scope runs on cpu and cuda).
    public let device: DeviceKind
    /// Run-wide settings that change what is measured, set by the driver once the
    /// ranks agreed on them (the weights' seed; isolated timing, from --isolate; the
    /// calibration the roofline columns are computed from, `calib_source`; the collective).
    public var seed: UInt64 = 0
    public var isolated = false
    public var calibSource = ""
    /// The all-reduce's library (--collective; cpu configurations: mpi).
    public var collective = Collective.mpi
    /// Which of the sweep's repeats this measurement is (0 ..< --repeats): part of the
    /// key, so a killed run resumes at the repeat it was in.
    public var repeatIndex = 0

    /// cuda layer and model scope: the projections' operand type under `--math` (f32
    /// accumulation in every case): f32 (f32), the cache's 16-bit type (auto; f32 for an f32
    /// cache), bf16 (bf16). The attention kernel's products follow the cache's type.
    public var gpuGemmType: StorageDType {
        switch math {
        case .f32: return .f32
        case .auto: return dtype
        case .bf16: return .bf16
        }
    }

    /// The row's `kernel_math` (part of the resume key): the math the CPU kernel's products
    /// run in on the shards this configuration times (`TiledAttentionKernel.productMath`,
    /// this CPU); on cuda rows in layer and model scope the projections' (`gpuGemmType`),
    /// empty in kernel scope. The sweep checks the kernel it built agrees.
    public var kernelMath: String {
        guard device == .cpu else { return scope == .kernel ? "" : gpuGemmType.rawValue }
        guard math != .f32, let layout = try? attentionConfig.layout() else { return ProductMath.f32.rawValue }
        let ranks = isDeviceShare ? [(try? KernelWorkload.busiestRank(layout, tp: tp)) ?? 0] : Array(0..<tp)
        let bf16 = ranks.contains { r in
            guard let shard = try? layout.shard(tp: tp, rank: r) else { return false }
            return TiledAttentionKernel.productMath(math: math, dtype: dtype, groups: layout.kernelGroups(for: shard)) == .bf16
        }
        return (bf16 ? ProductMath.bf16 : .f32).rawValue
    }

    /// The layer's shape, from which its config is built as `bench` and `plan` build theirs.
    public var shape: LayerShape {
        LayerShape(variant: variant, heads: heads, headDim: headDim, ropeDim: ropeDim, kvRank: kvRank, qLoraRank: qLoraRank,
                   kvHeads: .ofGQA(kvHeads), nEmbd: nEmbd, nLayer: nLayer, intermediateSize: intermediateSize, vocabSize: vocabSize)
    }

    /// The layer config (authors' keys) this configuration runs.
    public var attentionConfig: AttentionConfig { shape.config }

    /// Layer and model scope append one token per warm-up and timed step, to the set of
    /// caches the step takes (every set when the cache is cold, one when warm).
    public var appending: MemoryFootprint.Appending { .init(steps: warmup + steps, coldCache: coldCache) }

    /// What the busiest rank of this configuration's plan will hold on `backend` (kernel
    /// scope on the CPU: as `mlra bench` predicts it, through `KernelWorkload.footprint`;
    /// on a GPU: as `GPUKernelWorkload` does; layer and model scope: every cache set, as
    /// `LayerStep` and `ModelStep` allocate them, with the reference the validation holds).
    public func footprint(backend: MemoryFootprint.Backend) throws -> MemoryFootprint {
        let layout = try attentionConfig.layout()
        let seqs = isDeviceShare ? batch : sequencesPerReplica
        switch scope {
        case .kernel:
            if case .cpu(let llc) = backend {
                return try KernelWorkload.footprint(layout: layout, tp: tp, rank: nil, dtype: dtype, context: context, sequences: seqs,
                                                    coldCache: coldCache, llcBytes: llc)
            }
            return try MemoryFootprint(layout: layout, tp: tp, dtype: dtype, workload: .kernel(coldCache: coldCache), context: context,
                                       sequences: seqs, backend: backend, what: "the cache set of \(seqs) × \(context) tokens")
        case .layer:
            return try MemoryFootprint(layout: layout, tp: tp, dtype: dtype, workload: .layer, context: context, sequences: seqs,
                                       backend: backend, reference: true, appending: appending, what: "the memory of \(label)")
        case .model:
            return try MemoryFootprint(layout: layout, tp: tp, dtype: dtype, workload: .model(ModelLayout(config: attentionConfig)),
                                       context: context, sequences: seqs, backend: backend, reference: true, appending: appending,
                                       what: "the memory of \(label)")
        }
    }

    /// Kernel scope with a TP degree larger than the job times one device's share
    /// of the plan (its busiest rank) on world rank 0, as the paper times kernels.
    public var isDeviceShare: Bool { scope == .kernel && tp > worldSize }
    /// Data-parallel replicas (TP groups) taking part: as many of the world's
    /// N/t groups as split the batch evenly (gcd), so a batch-1 latency run uses
    /// one group and leaves the others idle.
    public var replicas: Int { isDeviceShare ? 1 : gcd(worldSize / max(tp, 1), batch) }
    /// Sequences each replica decodes.
    public var sequencesPerReplica: Int { batch / replicas }

    /// Why this configuration cannot run, or nil. Checked identically on every rank.
    public func skipReason() -> String? {
        if variant == .gqa && !shape.kvHeadsDivideHeads { return "gqa: n_head \(heads) is not divisible by kv_heads \(kvHeads)" }
        let layout: any AttentionLayout
        do { layout = try attentionConfig.layout() } catch let e as HarnessError { return e.message } catch { return "\(error)" }
        do { _ = try layout.shards(tp: tp) } catch let e as HarnessError { return e.message } catch { return "\(error)" }
        if scope == .model {
            do { try ModelLayout(config: attentionConfig).checkTP(tp) } catch let e as HarnessError { return e.message } catch { return "\(error)" }
        }
        if !isDeviceShare {
            if worldSize % tp != 0 { return "TP degree \(tp) does not divide the world size \(worldSize)" }
        }
        return nil
    }

    /// The resume key: the CSV columns that identify a measurement, and how each is
    /// computed from a configuration. This list is the one definition of the key:
    /// resume compares it, the samples file links to it (`configID`), and
    /// docs/resume-key.txt, which the merge script and the analysis read, is held to
    /// it by a test. Every setting that can change a value in a row is here: the grid
    /// point; the job's world size and dp (with tp and batch they fix how the batch is
    /// split); the timing mode (--isolate); the weights' seed; warm-up and timed steps;
    /// the cold cache; the device (cpu or cuda) and the all-reduce's library; the calibration the roofline columns
    /// come from (the CPU's or, on cuda, the GPU's: `calib_source`); the repeat (each
    /// of --repeats is a measurement of its own). Not here: the
    /// output paths and the Slurm array shape (they decide where a row goes, not what
    /// it holds), and the machine (host, CPU, harness build), which every row records
    /// beside its numbers: resuming on another node of the same kind is the point of
    /// resuming. Settings that do not apply to a configuration (q_lora_rank for the GQA
    /// family, model sizes outside model scope) are 0, so configurations differing only
    /// in them are one configuration.
    static let keyDefinition: [(column: String, value: @Sendable (SweepConfig) -> String)] = [
        ("world_size", { "\($0.worldSize)" }), ("calib_source", { $0.calibSource }),
        ("variant", { $0.variant.rawValue }), ("scope", { $0.scope.rawValue }),
        ("tp", { "\($0.tp)" }), ("dp", { "\($0.replicas)" }), ("context", { "\($0.context)" }), ("batch", { "\($0.batch)" }),
        ("n_layer", { "\($0.nLayer)" }), ("n_embd", { "\($0.nEmbd)" }), ("n_head", { "\($0.heads)" }),
        ("head_dim", { "\($0.headDim)" }), ("rope_dim", { "\($0.ropeDim)" }), ("kv_lora_rank", { "\($0.kvRank)" }),
        ("q_lora_rank", { "\($0.variant.isLatent ? $0.qLoraRank : 0)" }), ("kv_heads", { "\($0.kvHeads)" }),
        ("intermediate_size", { "\($0.scope == .model ? $0.intermediateSize : 0)" }),
        ("vocab_size", { "\($0.scope == .model ? $0.vocabSize : 0)" }),
        ("kv_dtype", { $0.dtype.rawValue }), ("threads", { "\($0.threads)" }), ("device", { $0.device.rawValue }),
        ("kernel_math", { $0.kernelMath }), ("collective", { $0.collective.rawValue }),
        ("timing_mode", { $0.timingMode.rawValue }),
        ("cold_cache", { $0.coldCache ? "true" : "false" }), ("seed", { "\($0.seed)" }),
        ("warmup_steps", { "\($0.warmup)" }), ("timed_steps", { "\($0.steps)" }),
        ("repeat", { "\($0.repeatIndex)" }),
    ]

    /// The resume key's CSV columns, in order.
    public static let keyColumns = keyDefinition.map(\.column)

    /// The resume key's columns with this configuration's values.
    public var keyFields: [(String, String)] { Self.keyDefinition.map { ($0.column, $0.value(self)) } }

    public var key: String { Self.key(keyFields) }

    /// The key of a CSV row, comparable with `key`.
    public static func key(row: [String: String]) -> String { key(keyColumns.map { ($0, row[$0] ?? "") }) }

    static func key(_ fields: [(String, String)]) -> String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }

    /// A short stable id of the key that links a configuration's
    /// samples to its row.
    public var configID: String { Self.configID(key: key) }

    public static func configID(key: String) -> String { fnv1aHex(Array(key.utf8)) }

    /// How this configuration is timed: one device's share on rank 0, or the group's
    /// ranks in turn (isolated), or all at once.
    public var timingMode: TimingMode { isDeviceShare ? .deviceShare : (isolated ? .isolated : .concurrent) }

    /// A short description for progress lines.
    public var label: String {
        "\(variant.rawValue) \(scope.rawValue) tp=\(tp) L=\(context) B=\(batch) h=\(heads)"
            + (variant.isLatent ? " dc=\(kvRank)" : " kv=\(kvHeads)") + " \(dtype.rawValue)" + (device == .cpu ? " thr=\(threads)" : " cuda")
    }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// MLRACore's fnv1a64 as 16 hex digits: a short stable id of some bytes.
public func fnv1aHex(_ bytes: [UInt8]) -> String {
    let hex = String(fnv1a64(bytes), radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
