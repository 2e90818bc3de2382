import MLRACore

/// Built-in sweeps. `mlra sweep --preset NAME --print-spec` prints one as a spec
/// file to start a custom study from.
public enum SweepPreset: String, CaseIterable, Sendable {
    /// The README's main job: every variant at TP 1, 2, 4 in all three scopes, on
    /// small shapes, in about 2 minutes under `mpirun -n 4 --oversubscribe` on 2 cores.
    case quick
    /// The paper's latency shapes (method §6): one device's share, batch 1, bf16 and f32,
    /// GQA at TP 8, MLA unsharded, GLA-2 at TP 2, MLRA-4 at TP 4, h = 64, d_h 128,
    /// d_r 64, d_c 512; contexts from 8K up to 2M, each checked against memory first.
    case paper
    /// The paper's four per-device shapes on GPUs (issue 12): kernel scope as `paper` (one
    /// device's share of GQA at TP 8, MLA, GLA-2 at TP 2, MLRA-4 at TP 4), bf16, batch 1,
    /// contexts 128K to 2M; and layer scope at the same shapes, at TP 1 and, where the job
    /// has the ranks, at the paper's TP degree (ranks beyond the GPUs share them).
    case paperGPU = "paper-gpu"
    /// The paper's batched layout: 128 heads, n_embd 7168, MLA as DP=N, GLA-2 as
    /// TP=2×DP=N/2, MLRA-4 as TP=4×DP=N/4, GQA as TP=min(8, N); layer scope;
    /// batch 8·N and contexts scaled to the machine.
    case throughput
    /// `throughput` on GPUs (issue 12): the same batched layout (MLA as DP, GLA-2 as
    /// TP=2×DP, MLRA-4 as TP=4×DP, GQA as TP=min(8, N)) in layer scope on each rank's GPU,
    /// bf16, with batches of 8 and 64 sequences per rank and contexts of 4K to 128K: the
    /// memory check, which counts the ranks sharing a GPU, skips what a GPU cannot hold,
    /// with its reason, so one spec scales to the job's GPUs and their memory.
    case throughputGPU = "throughput-gpu"

    public func spec(worldSize n: Int) -> SweepSpec {
        switch self {
        case .quick:
            var d = SweepSpec.Grid()
            d.headDim = 64; d.ropeDim = 32; d.qLoraRank = 128; d.kvHeads = 2; d.nEmbd = 256
            d.heads = [8]; d.kvRanks = [256]; d.dtypes = ["bf16"]; d.threads = [1]; d.batch = [4]
            d.nLayer = 2; d.intermediateSize = 512; d.vocabSize = 1024
            d.warmup = 2; d.steps = 10; d.coldCache = true
            d.variants = VariantName.allCases; d.tp = [1, 2, 4]
            var attention = SweepSpec.Grid()
            attention.scopes = [.kernel, .layer]; attention.contexts = [1024, 8192]
            var model = SweepSpec.Grid()
            model.scopes = [.model]; model.contexts = [1024]
            return SweepSpec(defaults: d, grids: [attention, model])

        case .paper:
            var d = SweepSpec.Grid()
            d.heads = [64]; d.headDim = 128; d.ropeDim = 64; d.kvRanks = [512]; d.qLoraRank = 1536; d.kvHeads = 8
            d.dtypes = ["bf16", "f32"]; d.batch = [1]; d.scopes = [.kernel]; d.threads = [1]
            d.contexts = [8192, 32768, 131_072, 524_288, 1_048_576, 2_097_152]
            d.warmup = 2; d.steps = 10; d.coldCache = true
            func grid(_ v: VariantName, _ tp: Int) -> SweepSpec.Grid { var g = SweepSpec.Grid(); g.variants = [v]; g.tp = [tp]; return g }
            return SweepSpec(defaults: d, grids: [grid(.gqa, 8), grid(.mla, 1), grid(.gla2, 2), grid(.mlra4, 4)])

        case .paperGPU:
            var d = SweepSpec.Grid()
            d.heads = [64]; d.headDim = 128; d.ropeDim = 64; d.kvRanks = [512]; d.qLoraRank = 1536; d.kvHeads = 8
            d.dtypes = ["bf16"]; d.batch = [1]; d.threads = [1]; d.devices = [.cuda]
            d.contexts = [131_072, 524_288, 1_048_576, 2_097_152]
            d.warmup = 3; d.steps = 20; d.coldCache = true
            let paperTP: [(VariantName, Int)] = [(.gqa, 8), (.mla, 1), (.gla2, 2), (.mlra4, 4)]
            let kernel = paperTP.map { v, tp in
                var g = SweepSpec.Grid(); g.variants = [v]; g.tp = [tp]; g.scopes = [.kernel]; return g
            }
            let layer = paperTP.map { v, tp in
                var g = SweepSpec.Grid(); g.variants = [v]; g.tp = tp > 1 && tp <= n ? [1, tp] : [1]; g.scopes = [.layer]; return g
            }
            return SweepSpec(defaults: d, grids: kernel + layer)

        case .throughput:
            var d = SweepSpec.Grid()
            d.heads = [128]; d.nEmbd = 7168; d.headDim = 128; d.ropeDim = 64; d.kvRanks = [512]; d.qLoraRank = 1536; d.kvHeads = 8
            d.dtypes = ["bf16"]; d.batch = [8 * n]; d.scopes = [.layer]; d.threads = [1]
            d.contexts = [1024, 4096]; d.warmup = 1; d.steps = 5
            func grid(_ v: VariantName, _ tp: Int) -> SweepSpec.Grid {
                var g = SweepSpec.Grid(); g.variants = [v]; g.tp = [min(tp, n)]; return g
            }
            return SweepSpec(defaults: d, grids: [grid(.mla, 1), grid(.gla2, 2), grid(.mlra4, 4), grid(.gqa, 8)])

        case .throughputGPU:
            var spec = SweepPreset.throughput.spec(worldSize: n)
            spec.defaults.devices = [.cuda]
            spec.defaults.batch = [8 * n, 64 * n]
            spec.defaults.contexts = [4096, 32768, 131_072]
            spec.defaults.warmup = 3; spec.defaults.steps = 20; spec.defaults.coldCache = true
            return spec
        }
    }
}
