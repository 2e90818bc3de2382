import ArgumentParser
import MLRACore

/// `mlra weights`: writes a layer's seeded weights as a safetensors checkpoint
/// with the authors' parameter names, so another implementation can load the
/// exact weights `mlra forward --seed N` uses.
struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Write a layer's seeded weights as safetensors (authors' parameter names).")

    @Option(help: "Layer config JSON.")
    var config: String
    @Option(help: "Seed of the deterministic weights.")
    var seed: UInt64 = 0
    @Option(help: "Stored dtype: f32, f16, bf16.")
    var dtype: StorageDType = .f32
    @Option(help: "safetensors file to write.")
    var out: String?
    @Option(name: .customLong("output"), help: .hidden) var outputOld: String?

    func validate() throws {
        guard try renamed(out, "--out", old: outputOld, "--output") != nil else {
            throw ValidationError("--out is required: the safetensors file to write")
        }
    }

    /// --out, or its old spelling (validate() has made sure of one).
    var output: String { out ?? outputOld ?? "" }

    func run() throws {
        let layout = try AttentionConfig.load(path: config).layout()
        try checkWritable(output)
        // Every tensor is held in f32 and once more encoded: refused before generating any
        // (a config near the 2^40-parameter limit otherwise ran until the machine ran out).
        let elements = try CheckedSize.sum(layout.parameters.map { try CheckedSize.product($0.shape, "tensor '\($0.name)'") }, "the weights")
        try MemoryBudget.check(bytesPerRank: try CheckedSize.product([elements, 4 + dtype.bytes], "the weights"), ranks: 1,
                               what: "writing \(elements) weights")
        let source = SeededWeights(seed: seed)
        var tensors = [String: Tensor]()
        for p in layout.parameters { tensors[p.name] = try source.load(p) }
        try SafeTensorsFile.write(tensors, to: output, dtype: dtype,
                                  metadata: ["variant": layout.variant.rawValue, "seed": String(seed)])
        print("wrote \(tensors.count) tensors (\(dtype.rawValue)) to \(output)")
    }
}
