import ArgumentParser
import Foundation
import MLRACore
import MLRACuda
import MLRAParallel

/// `mlra generate`: greedy decoding with a whole sharded decoder (model scope).
/// Under mpirun -n t every rank holds one TP shard of every layer.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Greedy generation with a sharded decoder model; prints the generated token ids.")

    @Option(help: "Model config JSON: layer keys plus n_layer, intermediate_size, vocab_size.")
    var config: String
    @OptionGroup var weightOptions: WeightOptions
    @OptionGroup var kernelOptions: KernelOptions
    @OptionGroup var gpu: GPUOptions
    @OptionGroup var topologyOptions: TopologyOptions
    @Option(help: "Comma-separated prompt token ids.")
    var prompt: String
    @Option(help: "Number of tokens to generate.")
    var tokens: Int
    @Option(name: .customLong("kv-dtype"), help: "KV-cache storage: f32, f16, bf16.")
    var kvDtype: StorageDType = .f32
    @Flag(help: "Print a JSON line with per-rank cache bytes and the collectives issued.")
    var stats = false
    @Option(name: .customLong("logits-out"), help: "Also write the logits of every generated token as tensor 'logits' [K, vocab] (rank 0).")
    var logitsOut: String?

    func run() throws {
        try runParallel { world in
            let topology = NodeTopology(world)
            let (layout, promptIds) = try world.collectively { () throws -> (ModelLayout, [Int]) in
                // The world is one TP group: refused before anything is read if it spans nodes.
                try TPGroups.check(tp: world.size, topology: topology, allowCrossNode: topologyOptions.allowCrossNodeTP)
                let layout = try ModelLayout(config: AttentionConfig.load(path: config))
                let ids = try checkingFlags {
                    try requirePositive(tokens, "--tokens")
                    guard tokens <= 1 << 40 else { throw HarnessError("--tokens \(tokens) is beyond any cache this harness can hold") }
                    return try parseTokenIds(prompt, vocab: layout.vocabSize)
                }
                if world.rank == 0, let logitsOut { try checkWritable(logitsOut) }
                try layout.checkTP(world.size)
                // The caches of every layer for prompt + generated tokens, the rank's weights, the gathered
                // lm_head, the logits of every generated token: checked, since --tokens can be anything.
                let what = "the memory of generating \(tokens) tokens"
                let need = try MemoryFootprint(layout: layout.attention, tp: world.size, dtype: kvDtype, workload: .model(layout),
                                               context: CheckedSize.sum([ids.count, tokens], what), sequences: 1, logitRows: tokens, what: what)
                try MemoryBudget.check(need, ranks: topology.localSize, what: "generating \(tokens) tokens")
                return (layout, ids)
            }
            let context = promptIds.count + tokens
            let generated: [Int], allLogits: [Float], report: RunStats
            if gpu.device == .cuda {
                // The whole decoder on this rank's GPU (node-local rank mod GPUs): the ids go up
                // and the rank's logits come back once per step, the all-reduces go through the host.
                let (backend, model, caches, attention) = try world.collectively {
                    () throws -> (CUDABackend, DecoderModel<CUDABackend>, [DeviceKVCache], GPUAttention) in
                    let device = try CUDADevice(localRank: topology.localRank, localSize: topology.localSize)
                    let need = try GPUModelWorkload.footprint(device: device, layout: layout, tp: world.size, rank: world.rank, dtype: kvDtype,
                                                              sequences: 1, context: context, kernelRows: promptIds.count, appending: nil)
                    try GPUModelWorkload.checkFits(need, device: device, what: "generating \(tokens) tokens")
                    let backend = try CUDABackend(device: device)
                    let model = try DecoderModel(layout: layout, tp: world.size, rank: world.rank, weights: weightOptions.source(), on: backend)
                    let caches = try model.makeCaches(dtype: kvDtype, capacity: context, on: backend)
                    // Planned for the prompt's rows (the prefill); the decode steps launch one row.
                    let attention = try GPUModelWorkload.attention(model, device: device, dtype: kvDtype, rows: promptIds.count,
                                                                   length: context, tuning: gpu.tuning)
                    try backend.finish()
                    return (backend, model, caches, attention)
                }
                (generated, allLogits) = model.greedy(prompt: promptIds, count: tokens, caches: caches, on: backend, attention: attention,
                                                      collectives: world)
                try world.collectively { _ = try backend.finish() }
                report = RunStats(world: world, cacheRowBytes: caches.reduce(0) { $0 + $1.rowBytes },
                                  cacheAllocatedBytes: caches.reduce(0) { $0 + $1.capacity * $1.rowBytes })
            } else {
                let model = try world.collectively {
                    try DecoderShard(layout: layout, tp: world.size, rank: world.rank, weights: weightOptions.source())
                }
                let caches = model.makeCaches(dtype: kvDtype, capacity: context)
                (generated, allLogits) = model.greedy(prompt: promptIds, count: tokens, caches: caches, on: CPUBackend(),
                                                      attention: try kernelOptions.make(), collectives: world)
                report = RunStats(world: world, cacheRowBytes: caches.reduce(0) { $0 + $1.rowBytes },
                                  cacheAllocatedBytes: caches.reduce(0) { $0 + $1.allocatedBytes })
            }
            try world.collectively {
                try SafeTensors.checkFinite(allLogits, what: "logits")
                guard world.rank == 0 else { return }
                print(generated.map(String.init).joined(separator: ","))
                if stats { print("stats: " + report.json) }
                if let logitsOut {
                    try SafeTensorsFile.write(["logits": Tensor(shape: [tokens, layout.vocabSize], data: allLogits)],
                                              to: logitsOut, metadata: ["tp": String(world.size)])
                }
            }
        }
    }
}

/// "1,2,3" → [1, 2, 3], each id checked against the vocabulary.
func parseTokenIds(_ text: String, vocab: Int) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    guard !text.isEmpty else { throw HarnessError("--prompt needs at least one token id") }
    return try parts.map { p in
        guard let id = Int(p.trimmingCharacters(in: .whitespaces)), id >= 0, id < vocab else {
            throw HarnessError("--prompt: '\(p)' is not a token id in 0..<\(vocab)")
        }
        return id
    }
}
