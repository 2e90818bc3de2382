import ArgumentParser
import MLRACore

extension VariantName: ExpressibleByArgument {}
extension StorageDType: ExpressibleByArgument {}

/// Where the layer's weights come from: a safetensors file or a seed.
struct WeightOptions: ParsableArguments {
    @Option(name: .long, help: "Weights in safetensors (F32/F16/BF16) with the authors' parameter names.")
    var weights: String?

    @Option(name: .long, help: "Seed for deterministic weights (used when --weights is absent).")
    var seed: UInt64 = 0

    func source() throws -> WeightSource {
        if let weights { return try SafeTensorsWeights(path: weights) }
        return SeededWeights(seed: seed)
    }
}
