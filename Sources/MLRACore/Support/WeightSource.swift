/// Where a layer's or model's weights come from: a seed or a safetensors file.
/// Loaders ask for a box of a named parameter, so a rank reads only its shard.
public protocol WeightSource {
    /// The box `ranges` (default: all) of parameter `spec`, as f32.
    func load(_ spec: ParamSpec, ranges: [Range<Int>]?) throws -> Tensor
}

extension WeightSource {
    public func load(_ spec: ParamSpec) throws -> Tensor { try load(spec, ranges: nil) }
    /// Rows `rows` of a 2-D parameter.
    public func rows(_ spec: ParamSpec, _ rows: Range<Int>) throws -> Tensor {
        try load(spec, ranges: [rows, 0..<spec.shape[1]])
    }
    /// Columns `cols` of a 2-D parameter.
    public func columns(_ spec: ParamSpec, _ cols: Range<Int>) throws -> Tensor {
        try load(spec, ranges: [0..<spec.shape[0], cols])
    }
}

public struct SeededWeights: WeightSource {
    public let initializer: SeededInit
    public init(seed: UInt64) { initializer = SeededInit(seed: seed) }
    public func load(_ spec: ParamSpec, ranges: [Range<Int>]?) throws -> Tensor {
        initializer.tensor(spec.name, shape: spec.shape, kind: spec.kind, ranges: ranges)
    }
}

/// Weights from a safetensors file (F32, F16 or BF16 tensors); every tensor's
/// shape is checked against the layer's expectation before it is used.
public final class SafeTensorsWeights: WeightSource {
    public let file: SafeTensorsFile
    private var cache: [String: Tensor] = [:]

    public init(path: String) throws { file = try SafeTensorsFile(path: path) }

    public func load(_ spec: ParamSpec, ranges: [Range<Int>]?) throws -> Tensor {
        let full: Tensor
        if let t = cache[spec.name] { full = t } else {
            full = try file.tensor(spec.name, expectedShape: spec.shape)
            try SafeTensors.checkFinite(full.data, what: "\(file.path): tensor '\(spec.name)'")
            cache[spec.name] = full
        }
        guard let ranges else { return full }
        return full.slice(ranges)
    }

    /// Names in the file that none of `specs` uses (usually a sign of a wrong config).
    public func unusedNames(_ specs: [ParamSpec]) -> [String] {
        let used = Set(specs.map(\.name))
        return file.entries.keys.filter { !used.contains($0) }.sorted()
    }
}
