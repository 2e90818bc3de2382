import Foundation

/// The seven attention variants, named as on the command line and in files.
public enum VariantName: String, CaseIterable, Codable, Sendable {
    case mha, mqa, gqa, mla, gla2, mlra2, mlra4

    public var isLatent: Bool { [.mla, .gla2, .mlra2, .mlra4].contains(self) }

    public static func parse(_ text: String) throws -> VariantName {
        guard let v = VariantName(rawValue: text.lowercased()) else {
            throw HarnessError("unknown variant '\(text)'; expected one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    public static func parseList(_ text: String) throws -> [VariantName] {
        try text.split(separator: ",").map { try parse(String($0).trimmingCharacters(in: .whitespaces)) }
    }
}

/// A layer (or model) configuration as stored in JSON, with the authors' key
/// names. MLA family: n_embd, n_head, q_lora_rank, kv_lora_rank,
/// qk_nope_head_dim, qk_rope_head_dim. GQA family: n_embd, n_head, head_dim,
/// group_size (query heads per KV head; optional for mha and mqa). Model mode
/// adds n_layer, intermediate_size, vocab_size.
public struct AttentionConfig: Codable, Equatable, Sendable {
    public var variant: VariantName
    public var nEmbd: Int
    public var nHead: Int
    public var qLoraRank: Int?
    public var kvLoraRank: Int?
    public var qkNopeHeadDim: Int?
    public var qkRopeHeadDim: Int?
    public var headDim: Int?
    public var groupSize: Int?
    public var nLayer: Int?
    public var intermediateSize: Int?
    public var vocabSize: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case variant, nEmbd = "n_embd", nHead = "n_head"
        case qLoraRank = "q_lora_rank", kvLoraRank = "kv_lora_rank"
        case qkNopeHeadDim = "qk_nope_head_dim", qkRopeHeadDim = "qk_rope_head_dim"
        case headDim = "head_dim", groupSize = "group_size"
        case nLayer = "n_layer", intermediateSize = "intermediate_size", vocabSize = "vocab_size"
    }

    public init(variant: VariantName, nEmbd: Int, nHead: Int, qLoraRank: Int? = nil, kvLoraRank: Int? = nil,
                qkNopeHeadDim: Int? = nil, qkRopeHeadDim: Int? = nil, headDim: Int? = nil, groupSize: Int? = nil,
                nLayer: Int? = nil, intermediateSize: Int? = nil, vocabSize: Int? = nil) {
        self.variant = variant; self.nEmbd = nEmbd; self.nHead = nHead
        self.qLoraRank = qLoraRank; self.kvLoraRank = kvLoraRank
        self.qkNopeHeadDim = qkNopeHeadDim; self.qkRopeHeadDim = qkRopeHeadDim
        self.headDim = headDim; self.groupSize = groupSize
        self.nLayer = nLayer; self.intermediateSize = intermediateSize; self.vocabSize = vocabSize
    }

    /// Reads and decodes a JSON config file; every failure is one line naming the file.
    public static func load(path: String) throws -> AttentionConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HarnessError("\(path): cannot read config file")
        }
        let variants = "expected one of \(VariantName.allCases.map(\.rawValue).joined(separator: ", "))"
        // Only the keys read here must be integers: a checkpoint's config may carry others (rms_norm_eps 1e-6).
        let config = try StrictJSON.decode(AttentionConfig.self, from: data, path: path, kind: "config",
                                           integerKeys: CodingKeys.allCases.map(\.rawValue), invalidValue: { $0 == ["variant"] ? "unknown variant; \(variants)" : nil })
        try config.checkLimits(file: path)
        return config
    }

    /// Every size within the harness's limits, for configs from files (`file`, named in
    /// the message) and from flags alike (`layout()` checks it first).
    public func checkLimits(file: String? = nil) throws {
        // Absurd sizes are refused before any size product can overflow an Int or a
        // per-layer loop runs for ever (the divisibility checks of `layout()` come after).
        let sizes: [(String, Int?, Int)] = [
            ("n_embd", nEmbd, 1 << 24), ("n_head", nHead, 1 << 20), ("q_lora_rank", qLoraRank, 1 << 24),
            ("kv_lora_rank", kvLoraRank, 1 << 24), ("qk_nope_head_dim", qkNopeHeadDim, 1 << 20),
            ("qk_rope_head_dim", qkRopeHeadDim, 1 << 20), ("head_dim", headDim, 1 << 20),
            ("group_size", groupSize, 1 << 20), ("n_layer", nLayer, 1 << 12),
            ("intermediate_size", intermediateSize, 1 << 26), ("vocab_size", vocabSize, 1 << 26),
        ]
        for case let (key, value?, limit) in sizes where value > limit {
            throw HarnessError((file.map { "\($0): config key '\(key)'" } ?? "'\(key)'") + " is \(value); the largest supported value is \(limit)")
        }
        // Parameter count of the whole model (Double, so it cannot overflow): at most 2^40 elements (4 TiB in f32).
        let d = Double(nEmbd), h = Double(nHead)
        let dh = Double(headDim ?? 0) + Double(qkNopeHeadDim ?? 0) + Double(qkRopeHeadDim ?? 0)
        let attention = d * (Double(qLoraRank ?? 0) + Double(kvLoraRank ?? 0) + 4 * h * dh)
            + Double(qLoraRank ?? 0) * h * dh + Double(kvLoraRank ?? 0) * 2 * h * dh
        let layers = Double(nLayer ?? 1), mlp = 3 * d * Double(intermediateSize ?? 0)
        let total = layers * (attention + mlp) + d * Double(vocabSize ?? 0)
        guard total <= 1_099_511_627_776 else {
            throw HarnessError((file.map { "\($0): config sizes" } ?? "the sizes") + String(format: " give about %.3g parameters; at most 2^40 are supported", total))
        }
    }

    func required(_ value: Int?, _ key: String) throws -> Int {
        guard let v = value else { throw HarnessError("config for \(variant.rawValue) needs '\(key)'") }
        try requirePositive(v, key)
        return v
    }

    /// Checks every size and divisibility rule and returns the layer's layout.
    public func layout() throws -> any AttentionLayout {
        try checkLimits()
        try requirePositive(nEmbd, "n_embd")
        try requirePositive(nHead, "n_head")
        if variant.isLatent { return try LatentLayout(config: self) }
        return try GroupedLayout(config: self)
    }
}
