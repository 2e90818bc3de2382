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

/// One rank's shard of the decoder on a backend (`ComputeBackend`): the plan above,
/// written once. A step's activations stay where the backend computes; the plan crosses
/// to the host twice: the token ids in, and the rank's logits out for the gather (the
/// greedy id is taken on the host from the gathered logits). `DecoderShard` is this on
/// the CPU.
public final class DecoderModel<Backend: ComputeBackend> {
    public let layout: ModelLayout
    public let tpRank: Int, tp: Int
    struct Layer {
        let inputNorm: Backend.Matrix, postNorm: Backend.Matrix
        let attention: any BackendShard<Backend>
        let w1: Backend.Matrix, w2: Backend.Matrix
        let wDown: RowParallelLinear<Backend>
    }
    let layers: [Layer]
    let wte: Backend.Matrix, lmHead: Backend.Matrix, finalNorm: Backend.Matrix
    public let vocabSlice: Range<Int>
    /// This rank's columns of the MLP (IR).
    public let mlpWidth: Int
    /// Bytes of weights this rank holds (as f32).
    public let weightBytes: Int

    public var attentionShards: [any BackendShard<Backend>] { layers.map(\.attention) }

    public init(layout: ModelLayout, tp: Int, rank: Int, weights: WeightSource, on backend: Backend) throws {
        try layout.checkTP(tp)
        self.layout = layout
        self.tp = tp
        tpRank = rank
        let specs = Dictionary(uniqueKeysWithValues: layout.parameters.map { ($0.name, $0) })
        let mlpSlice = evenSplit(layout.intermediateSize, parts: tp, part: rank)
        mlpWidth = mlpSlice.count
        vocabSlice = evenSplit(layout.vocabSize, parts: tp, part: rank)
        let attentionShard = try layout.attention.shard(tp: tp, rank: rank)
        var held = 0
        layers = try (0..<layout.nLayer).map { l in
            let pre = ModelLayout.layerPrefix(l)
            let inputNorm = try weights.load(specs[pre + "input_layernorm.weight"]!)
            let postNorm = try weights.load(specs[pre + "post_attention_layernorm.weight"]!)
            let attention = try layout.attention.makeShard(attentionShard, weights: weights, prefix: pre + "attn.", on: backend)
            let w1 = try weights.rows(specs[pre + "mlp.c_fc1.weight"]!, mlpSlice)
            let w2 = try weights.rows(specs[pre + "mlp.c_fc2.weight"]!, mlpSlice)
            let wDown = try weights.columns(specs[pre + "mlp.c_proj.weight"]!, mlpSlice)
            held += attention.weightBytes + bytes([inputNorm, postNorm, w1, w2, wDown])
            return Layer(inputNorm: backend.matrix(inputNorm), postNorm: backend.matrix(postNorm), attention: attention,
                         w1: backend.matrix(w1), w2: backend.matrix(w2), wDown: RowParallelLinear(backend.matrix(wDown)))
        }
        let wte = try weights.load(specs[ModelLayout.embeddingName]!)
        let lmHead = wte.rows(vocabSlice)
        let finalNorm = try weights.load(specs[ModelLayout.finalNormName]!)
        weightBytes = held + bytes([wte, lmHead, finalNorm])
        (self.wte, self.lmHead, self.finalNorm) = (backend.matrix(wte), backend.matrix(lmHead), backend.matrix(finalNorm))
    }

    /// One cache per layer for a new sequence.
    public func makeCaches(dtype: StorageDType, capacity: Int, on backend: Backend) throws -> [Backend.Cache] {
        try layers.map { try backend.makeCache(dtype: dtype, width: $0.attention.cacheWidth, capacity: capacity) }
    }

    /// Runs new tokens of several sequences (sequence s: tokens[s], appended to
    /// caches[s]) through the model and returns the full logits [S, V] of each
    /// sequence's last new token, on the host of every rank. Prefill is one sequence with
    /// many tokens; a batched decode step is S sequences with one token each. Each layer
    /// ends its attention and its MLP with one all-reduce for the whole batch, issued by
    /// their row-parallel projections; the logits are gathered once.
    public func forward(tokens: [[Int]], caches: [[Backend.Cache]], on b: Backend, attention: Backend.Attention,
                        collectives: TPCollectives) -> [Float] {
        let d = layout.nEmbd
        let rows = tokens.reduce(0) { $0 + $1.count }
        var x = b.embed(wte, ids: tokens.flatMap { $0 }, width: d)

        for (l, layer) in layers.enumerated() {
            // Attention: each sequence on its own cache; one all-reduce for the batch (its wO).
            let h = normalizedRows(x, rows: rows, weight: layer.inputNorm, on: b)
            let a = layer.attention.forward(h, rows: BatchRows(caches: caches.map { $0[l] }, tokens: tokens.map(\.count)), on: b,
                                            attention: attention, collectives: collectives)
            b.add(&x, a, count: rows * d)

            // SwiGLU MLP: column-parallel W1, W2, row-parallel W_down; one all-reduce.
            let m = normalizedRows(x, rows: rows, weight: layer.postNorm, on: b)
            var gate = b.linear(m, rows: rows, layer.w1)          // [rows, IR]
            let up = b.linear(m, rows: rows, layer.w2)            // [rows, IR]
            b.swiGLU(&gate, up, count: rows * mlpWidth)
            let o = layer.wDown(gate, rows: rows, on: b, collectives: collectives)   // [rows, D]
            b.add(&x, o, count: rows * d)
        }

        // Final norm and vocab-parallel logits for each sequence's last token, gathered.
        var last = x
        if rows > tokens.count {
            last = b.zeros(tokens.count * d)
            var end = 0
            for (s, seq) in tokens.enumerated() {
                end += seq.count
                b.copy(x, Strided(offset: (end - 1) * d, ld: d), into: &last, Strided(offset: s * d, ld: d), rows: 1, blocks: 1, width: d)
            }
        }
        let hLast = normalizedRows(last, rows: tokens.count, weight: finalNorm, on: b)
        let local = b.host(b.linear(hLast, rows: tokens.count, lmHead), count: tokens.count * vocabSlice.count)   // [S, VR]
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

    /// RMSNorm of each row of x [rows, D] into a new buffer (x is the residual stream, kept).
    func normalizedRows(_ x: Backend.Buffer, rows: Int, weight: Backend.Matrix, on b: Backend) -> Backend.Buffer {
        let d = layout.nEmbd
        var h = b.zeros(rows * d)
        b.copy(x, Strided(ld: d), into: &h, Strided(ld: d), rows: rows, blocks: 1, width: d)
        b.rmsNorm(&h, rows: rows, stride: d, offset: 0, count: d, weight: weight, scale: 1)
        return h
    }

    /// Greedy decoding of one sequence: the prompt in one prefill, then one decode step per
    /// generated token (fed back as the next input). Returns the `count` generated ids and
    /// the logits [count, V] each was taken from.
    public func greedy(prompt: [Int], count: Int, caches: [Backend.Cache], on b: Backend, attention: Backend.Attention,
                       collectives: TPCollectives) -> (ids: [Int], logits: [Float]) {
        var ids = [Int](), all = [Float]()
        var logits = forward(tokens: [prompt], caches: [caches], on: b, attention: attention, collectives: collectives)
        while true {
            let next = argmax(logits[...])
            ids.append(next)
            all += logits
            if ids.count == count { return (ids, all) }
            logits = forward(tokens: [[next]], caches: [caches], on: b, attention: attention, collectives: collectives)
        }
    }
}

/// The decoder on the CPU, for host arrays and host caches.
public typealias DecoderShard = DecoderModel<CPUBackend>

extension DecoderModel where Backend == CPUBackend {
    public convenience init(layout: ModelLayout, tp: Int, rank: Int, weights: WeightSource) throws {
        try self.init(layout: layout, tp: tp, rank: rank, weights: weights, on: CPUBackend())
    }

    /// One cache per layer for a new sequence.
    public func makeCaches(dtype: StorageDType, capacity: Int) -> [KVCache] {
        layers.map { KVCache(dtype: dtype, width: $0.attention.cacheWidth, capacity: capacity) }
    }

    /// `forward(tokens:caches:on:attention:collectives:)` on host arrays with `kernel`.
    public func forward(tokens: [[Int]], caches: [[KVCache]], kernel: AttentionKernel, collectives: TPCollectives) -> [Float] {
        forward(tokens: tokens, caches: caches, on: CPUBackend(), attention: kernel, collectives: collectives)
    }
}

/// Index of the largest value (first one on ties): greedy decoding.
public func argmax(_ v: ArraySlice<Float>) -> Int {
    var best = v.startIndex
    for i in v.indices where v[i] > v[best] { best = i }
    return best - v.startIndex
}
