import ArgumentParser
import Foundation
import MLRACore
import MLRACuda
import MLRAParallel

/// `mlra forward`: the file contract for checking the harness against another
/// implementation. x [T, n_embd] in, y [T, n_embd] out; positions 0 ..< T0 go
/// through prefill, every later one through a single-token decode step.
struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run one attention layer over x (prefill, then decode steps) and write y.")

    @Option(help: "Layer config JSON (authors' key names plus \"variant\").")
    var config: String
    @OptionGroup var weightOptions: WeightOptions
    @OptionGroup var kernelOptions: KernelOptions
    @OptionGroup var gpu: GPUOptions
    @OptionGroup var topologyOptions: TopologyOptions
    @Option(help: "safetensors file holding tensor 'x' [T, n_embd] (F32).")
    var input: String
    @Option(help: "Positions 0..<T0 go through prefill; later ones through decode steps.")
    var prefill: Int
    @Option(help: "safetensors file to write with tensor 'y' [T, n_embd] (F32).")
    var out: String?
    @Option(name: .customLong("output"), help: .hidden) var outputOld: String?
    @Option(name: .customLong("kv-dtype"), help: "KV-cache storage: f32, f16, bf16.")
    var kvDtype: StorageDType = .f32
    @Flag(help: "Also run the Double reference forward and print the largest difference.")
    var check = false
    @Flag(help: "Print a JSON line with per-rank cache bytes and the collectives issued (for tests and audits).")
    var stats = false

    func validate() throws {
        guard try renamed(out, "--out", old: outputOld, "--output") != nil else {
            throw ValidationError("--out is required: the safetensors file to write y to")
        }
    }

    /// --out, or its old spelling (validate() has made sure of one).
    var output: String { out ?? outputOld ?? "" }

    func run() throws {
        // Under mpirun -n t every rank holds one TP shard; rank 0 writes y.
        try runParallel { world in
            let tp = world.size
            let topology = NodeTopology(world)
            let (layout, x, shard, weights) = try world.collectively { () throws -> (any AttentionLayout, Tensor, (any AttentionShard)?, WeightSource) in
                // The world is one TP group: refused before anything is read if it spans nodes.
                try TPGroups.check(tp: tp, topology: topology, allowCrossNode: topologyOptions.allowCrossNodeTP)
                let layout = try AttentionConfig.load(path: config).layout()
                // Everything is checked from the header before x's data is read: a huge x is
                // refused from its predicted memory at once, not after minutes of loading.
                let file = try SafeTensorsFile(path: input)
                let shape = try file.entry("x").shape
                guard shape.count == 2, shape[1] == layout.nEmbd, shape[0] > 0 else {
                    throw HarnessError("\(input): tensor 'x' has shape \(shape), expected [T, \(layout.nEmbd)] with T ≥ 1")
                }
                let tokens = shape[0]
                guard prefill >= 0, prefill <= tokens else {
                    throw HarnessError.usage("--prefill \(prefill) must lie in 0...\(tokens) (T of the input)")
                }
                if world.rank == 0 { try checkWritable(output) }
                let plan = try layout.shard(tp: tp, rank: world.rank)
                // The cache, the weights, x in f32 and its Double copy for --check.
                let need = try MemoryFootprint(layout: layout, tp: tp, dtype: kvDtype, workload: .layer, context: tokens, sequences: 1,
                                               inputRows: tokens, what: "the memory of a forward run over \(tokens) tokens")
                try MemoryBudget.check(need, ranks: topology.localSize, what: "this forward run over \(tokens) tokens")
                let x = try file.tensor("x")
                try SafeTensors.checkFinite(x.data, what: "\(input): tensor 'x'")
                let weights = try weightOptions.source()
                // On cuda the shard is built on the GPU below.
                return (layout, x, gpu.device == .cuda ? nil : try layout.makeShard(plan, weights: weights, prefix: ""), weights)
            }
            let tokens = x.shape[0]
            let y: [Float], report: RunStats
            if let shard {
                let cache = shard.makeCache(dtype: kvDtype, capacity: tokens)
                y = runSequence(shard, x: x.data, tokens: tokens, prefill: prefill, cache: cache, kernel: try kernelOptions.make(),
                                collectives: world)
                report = RunStats(world: world, cacheRowBytes: cache.rowBytes, cacheAllocatedBytes: cache.allocatedBytes)
            } else {
                // --device cuda (no CPU shard was built): the whole layer on this rank's GPU (node-local rank mod GPUs);
                // x goes up and y comes back once per call, the all-reduce goes through the host.
                let run = try world.collectively { () throws -> GPUForward in
                    try GPUForward(layout: layout, tp: tp, rank: world.rank, weights: weights, dtype: kvDtype, tokens: tokens,
                                   prefill: prefill, topology: topology, tuning: gpu.tuning)
                }
                y = runSequence(run.shard, x: x.data, tokens: tokens, prefill: prefill, cache: run.cache, on: run.backend,
                                attention: run.attention, collectives: world)
                try world.collectively { _ = try run.backend.finish() }
                report = RunStats(world: world, cacheRowBytes: run.cache.rowBytes, cacheAllocatedBytes: run.cache.capacity * run.cache.rowBytes)
            }
            try world.collectively {
                try SafeTensors.checkFinite(y, what: "output y")
                guard world.rank == 0 else { return }
                try SafeTensorsFile.write(["y": Tensor(shape: [tokens, layout.nEmbd], data: y)], to: output,
                                          metadata: ["variant": layout.variant.rawValue, "prefill": String(prefill),
                                                     "kv_dtype": kvDtype.rawValue, "tp": String(tp), "harness": HarnessVersion.string])
                if stats { print("stats: " + report.json) }
                if check {
                    let ref = try ReferenceForward.run(layout, weights: weights, x: x.data.map(Double.init), tokens: tokens)
                    let err = zip(y, ref).map { abs(Double($0) - $1) }.max() ?? 0
                    print(String(format: "max |y - reference| = %.3e", err))
                }
            }
        }
    }
}

/// `forward --device cuda`: the rank's shard of the layer on its GPU (`CUDABackend`), its
/// device cache for the T tokens, and the decode attention planned for the prefill's rows.
struct GPUForward {
    let backend: CUDABackend
    let shard: any BackendShard<CUDABackend>
    let cache: DeviceKVCache
    let attention: GPUAttention

    init(layout: any AttentionLayout, tp: Int, rank: Int, weights: WeightSource, dtype: StorageDType, tokens: Int, prefill: Int,
         topology: NodeTopology, tuning: GPUTuning) throws {
        let device = try CUDADevice(localRank: topology.localRank, localSize: topology.localSize)
        let plan = try layout.shard(tp: tp, rank: rank)
        let rows = max(prefill, 1)
        let need = try GPULayerWorkload.footprint(device: device, layout: layout, shard: plan, dtype: dtype, sequences: 1, context: tokens,
                                                  appending: nil, kernelRows: rows)
        try device.checkFits(bytes: need.bytes * device.ranksSharing,
                             what: "this forward run over \(tokens) tokens (× \(device.ranksSharing) rank(s) on this GPU)")
        backend = try CUDABackend(device: device)
        shard = try layout.makeShard(plan, weights: weights, prefix: "", on: backend)
        cache = try DeviceKVCache(dtype: dtype, width: shard.cacheWidth, capacity: tokens)
        attention = try GPUAttention(device: device, groups: shard.groups, rowWidth: shard.cacheWidth, dtype: dtype,
                                     scale: layout.softmaxScale, maxBatch: rows, maxLength: tokens, tuning: tuning)
        try backend.finish()
    }
}
