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
    var output: String

    func run() throws {
        try runReportingErrors {
            let layout = try AttentionConfig.load(path: config).layout()
            try checkWritable(output)
            let source = SeededWeights(seed: seed)
            var tensors = [String: Tensor]()
            for p in layout.parameters { tensors[p.name] = try source.load(p) }
            try SafeTensorsFile.write(tensors, to: output, dtype: dtype,
                                      metadata: ["variant": layout.variant.rawValue, "seed": String(seed)])
            print("wrote \(tensors.count) tensors (\(dtype.rawValue)) to \(output)")
        }
    }
}
