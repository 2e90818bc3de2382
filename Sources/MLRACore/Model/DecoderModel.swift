/// A Llama-style decoder (method §3 "the rest of a decoder layer") around any
/// attention variant, sharded for one rank of a TP group:
///   x ← x + attn(RMSNorm(x; input_layernorm))                 one all-reduce (attention's wO)
///   x ← x + W_down(silu(W_1 h) ⊙ W_2 h), h = RMSNorm(x; post_attention_layernorm)   one all-reduce (W_down)
/// then RMSNorm(layernorm.weight) and the tied lm_head (logits = h · wteᵀ).
///
/// Per rank: IR = its slice of intermediate_size, VR = its slice of the vocabulary.
///   wte     [V, D]     replicated for the embedding lookup (no extra collective)
///   lmHead  [VR, D]    rows of wte: vocab-parallel logits, gathered once per step
///   w1, w2  [IR, D]    column-parallel;   wDown [D, IR] row-parallel (`RowParallelLinear`)
public struct ModelLayout: Sendable {
    public let attention: any AttentionLayout
    public let nLayer: Int, intermediateSize: Int, vocabSize: Int
    public var nEmbd: Int { attention.nEmbd }

    public init(config: AttentionConfig) throws {
        attention = try config.layout()
        nLayer = try config.required(config.nLayer, "n_layer")
        intermediateSize = try config.required(config.intermediateSize, "intermediate_size")
        vocabSize = try config.required(config.vocabSize, "vocab_size")
    }

    public static func layerPrefix(_ l: Int) -> String { "transformer.h.\(l)." }
    public static let embeddingName = "transformer.wte.weight"
    public static let finalNormName = "layernorm.weight"

    /// Every checkpoint parameter of the model (authors' names).
    public var parameters: [ParamSpec] {
        let (d, i) = (nEmbd, intermediateSize)
        // Embedding rows of norm ~0.6 so that the layers, not the input token, decide the next token.
        var p = [ParamSpec(Self.embeddingName, [vocabSize, d], .linear(fanIn: d))]
        for l in 0..<nLayer {
            let pre = Self.layerPrefix(l)
            p.append(ParamSpec(pre + "input_layernorm.weight", [d], .norm))
            p += attention.parameters.map { $0.prefixed(pre + "attn.") }
            p.append(ParamSpec(pre + "post_attention_layernorm.weight", [d], .norm))
            p.append(ParamSpec(pre + "mlp.c_fc1.weight", [i, d], .linear(fanIn: d)))
            p.append(ParamSpec(pre + "mlp.c_fc2.weight", [i, d], .linear(fanIn: d)))
            p.append(ParamSpec(pre + "mlp.c_proj.weight", [d, i], .linear(fanIn: i)))
        }
        p.append(ParamSpec(Self.finalNormName, [d], .norm))
        return p
    }

    /// Checks the TP degree for the whole model (attention plan, MLP and vocabulary splits).
    public func checkTP(_ tp: Int) throws {
        _ = try attention.shards(tp: tp)
        guard intermediateSize >= tp else {
            throw HarnessError("intermediate_size \(intermediateSize) cannot be split over TP degree \(tp)")
        }
        guard vocabSize >= tp else { throw HarnessError("vocab_size \(vocabSize) cannot be split over TP degree \(tp)") }
    }

    /// All-reduces of one step (attention and MLP of every layer); each moves the
    /// residual stream, D f32 values per sequence.
    public var allReducesPerStep: Int { 2 * nLayer }
}

public final class DecoderShard {
    public let layout: ModelLayout
    public let tpRank: Int, tp: Int
    struct Layer {
        let inputNorm: Tensor, postNorm: Tensor
        let attention: any AttentionShard
        let w1: Tensor, w2: Tensor
        let wDown: RowParallelLinear<CPUBackend>
    }
    let layers: [Layer]
    let wte: Tensor, lmHead: Tensor, finalNorm: Tensor
    public let vocabSlice: Range<Int>

    public var attentionShards: [any AttentionShard] { layers.map(\.attention) }
    public var weightBytes: Int {
        bytes([wte, lmHead, finalNorm]) + layers.reduce(0) {
            $0 + $1.attention.weightBytes + bytes([$1.inputNorm, $1.postNorm, $1.w1, $1.w2, $1.wDown.weight])
        }
    }

    public init(layout: ModelLayout, tp: Int, rank: Int, weights: WeightSource) throws {
        try layout.checkTP(tp)
        self.layout = layout
        self.tp = tp
        tpRank = rank
        let specs = Dictionary(uniqueKeysWithValues: layout.parameters.map { ($0.name, $0) })
        let mlpSlice = evenSplit(layout.intermediateSize, parts: tp, part: rank)
        vocabSlice = evenSplit(layout.vocabSize, parts: tp, part: rank)
        let attentionShard = try layout.attention.shard(tp: tp, rank: rank)
        layers = try (0..<layout.nLayer).map { l in
            let pre = ModelLayout.layerPrefix(l)
            return Layer(
                inputNorm: try weights.load(specs[pre + "input_layernorm.weight"]!),
                postNorm: try weights.load(specs[pre + "post_attention_layernorm.weight"]!),
                attention: try layout.attention.makeShard(attentionShard, weights: weights, prefix: pre + "attn."),
                w1: try weights.rows(specs[pre + "mlp.c_fc1.weight"]!, mlpSlice),
                w2: try weights.rows(specs[pre + "mlp.c_fc2.weight"]!, mlpSlice),
                wDown: RowParallelLinear(try weights.columns(specs[pre + "mlp.c_proj.weight"]!, mlpSlice)))
        }
        wte = try weights.load(specs[ModelLayout.embeddingName]!)
        lmHead = wte.rows(vocabSlice)
        finalNorm = try weights.load(specs[ModelLayout.finalNormName]!)
    }

    /// One cache per layer for a new sequence.
    public func makeCaches(dtype: StorageDType, capacity: Int) -> [KVCache] {
        layers.map { $0.attention.makeCache(dtype: dtype, capacity: capacity) }
    }

    /// Runs new tokens of several sequences (sequence s: tokens[s], appended to
    /// caches[s]) through the model and returns the full logits [S, V] of each
    /// sequence's last new token. Prefill is one sequence with many tokens; a
    /// batched decode step is S sequences with one token each. Each layer ends
    /// its attention and its MLP with one all-reduce for the whole batch, issued by
    /// their row-parallel projections.
    public func forward(tokens: [[Int]], caches: [[KVCache]], kernel: AttentionKernel,
                        collectives: TPCollectives) -> [Float] {
        let d = layout.nEmbd
        let rows = tokens.reduce(0) { $0 + $1.count }
        var x = [Float]()
        x.reserveCapacity(rows * d)
        for seq in tokens { for t in seq { x += wte.data[(t * d)..<((t + 1) * d)] } }

        for (l, layer) in layers.enumerated() {
            // Attention: each sequence on its own cache; one all-reduce for the batch (its wO).
            let h = normalizedRows(x, rows: rows, weight: layer.inputNorm)
            let a = layer.attention.forward(h, segments: tokens.indices.map { SequenceSegment(cache: caches[$0][l], tokens: tokens[$0].count) },
                                            kernel: kernel, collectives: collectives)
            for i in 0..<x.count { x[i] += a[i] }

            // SwiGLU MLP: column-parallel W1, W2, row-parallel W_down; one all-reduce.
            let m = normalizedRows(x, rows: rows, weight: layer.postNorm)
            var gate = BLAS.linear(m, rows: rows, layer.w1)          // [rows, IR]
            let up = BLAS.linear(m, rows: rows, layer.w2)            // [rows, IR]
            for i in 0..<gate.count { let g = gate[i]; gate[i] = g / (1 + expf(-g)) * up[i] }
            let o = layer.wDown(gate, rows: rows, on: CPUBackend(), collectives: collectives)   // [rows, D]
            for i in 0..<x.count { x[i] += o[i] }
        }

        // Final norm and vocab-parallel logits for each sequence's last token, gathered.
        var last = [Float]()
        var end = 0
        for seq in tokens { end += seq.count; last += x[((end - 1) * d)..<(end * d)] }
        let hLast = normalizedRows(last, rows: tokens.count, weight: finalNorm)
        let local = BLAS.linear(hLast, rows: tokens.count, lmHead)   // [S, VR]
        // One gather for the batch: rank r contributes [S, VR_r]; reassemble rows of [S, V].
        let slices = (0..<tp).map { evenSplit(layout.vocabSize, parts: tp, part: $0) }
        let gathered = collectives.allGather(local, counts: slices.map { $0.count * tokens.count })
        var logits = [Float](repeating: 0, count: tokens.count * layout.vocabSize)
        var offset = 0
        for slice in slices {
            for s in 0..<tokens.count {
                for (j, v) in slice.enumerated() { logits[s * layout.vocabSize + v] = gathered[offset + s * slice.count + j] }
            }
            offset += slice.count * tokens.count
        }
        return logits
    }

    func normalizedRows(_ x: [Float], rows: Int, weight: Tensor) -> [Float] {
        var h = x
        let d = layout.nEmbd
        h.withUnsafeMutableBufferPointer { p in
            weight.data.withUnsafeBufferPointer { w in
                for r in 0..<rows { rmsNorm(p.baseAddress! + r * d, count: d, weight: w.baseAddress!) }
            }
        }
        return h
    }
}

/// Index of the largest value (first one on ties): greedy decoding.
public func argmax(_ v: ArraySlice<Float>) -> Int {
    var best = v.startIndex
    for i in v.indices where v[i] > v[best] { best = i }
    return best - v.startIndex
}

#if canImport(Glibc)
import Glibc
#endif
