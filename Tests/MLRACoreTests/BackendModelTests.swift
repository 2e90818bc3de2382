import MLRACore
import XCTest

/// The decoder plan is written once against `ComputeBackend` (`DecoderModel`); these tests
/// hold it to the CPU results without a GPU. `DecoderShard` is the plan on `CPUBackend`.
/// `SharedBufferBackend` is the CPU's arithmetic with buffers that are objects, as a GPU's
/// device vectors are: a plan that let two names share one buffer (a copy on the CPU, one
/// vector on a GPU) and then wrote through one of them would differ here, where the CPU
/// backend's value semantics hide it.
final class BackendModelTests: XCTestCase {
    /// A buffer shared by reference, like a DeviceVector.
    final class Box { var v: [Float]; init(_ v: [Float]) { self.v = v } }

    final class SharedBufferBackend: ComputeBackend {
        let cpu = CPUBackend()
        /// Operations issued, by name (the plan's shape: what a GPU would launch).
        var issued: [String: Int] = [:]
        private func note(_ name: String) { issued[name, default: 0] += 1 }

        func matrix(_ t: Tensor) -> Tensor { t }
        func zeros(_ count: Int) -> Box { Box(cpu.zeros(count)) }
        func linear(_ x: Box, rows: Int, _ w: Tensor) -> Box { note("linear"); return Box(cpu.linear(x.v, rows: rows, w)) }
        func gemm(_ a: Box, _ sa: Strided, _ b: Tensor, _ sb: Strided, transposeB: Bool, into c: inout Box, _ sc: Strided,
                  m: Int, n: Int, k: Int, batch: Int, alpha: Float, accumulate: Bool) {
            note("gemm")
            cpu.gemm(a.v, sa, b, sb, transposeB: transposeB, into: &c.v, sc, m: m, n: n, k: k, batch: batch, alpha: alpha, accumulate: accumulate)
        }
        func rmsNorm(_ x: inout Box, rows: Int, stride: Int, offset: Int, count: Int, weight: Tensor, scale: Float) {
            cpu.rmsNorm(&x.v, rows: rows, stride: stride, offset: offset, count: count, weight: weight, scale: scale)
        }
        func rope(_ x: inout Box, rows: Int, _ columns: Strided, blocks: Int, positions: [Int], _ rope: RoPE) {
            cpu.rope(&x.v, rows: rows, columns, blocks: blocks, positions: positions, rope)
        }
        func copy(_ src: Box, _ ss: Strided, into dst: inout Box, _ sd: Strided, rows: Int, blocks: Int, width: Int) {
            cpu.copy(src.v, ss, into: &dst.v, sd, rows: rows, blocks: blocks, width: width)
        }
        func append(_ rows: Box, to caches: [KVCache]) { cpu.append(rows.v, to: caches) }
        func attend(_ queries: Box, caches: [KVCache], lengths: [Int], groups: [KernelGroup], scale: Float,
                    _ kernel: AttentionKernel) -> Box {
            Box(cpu.attend(queries.v, caches: caches, lengths: lengths, groups: groups, scale: scale, kernel))
        }
        func allReduceSum(_ x: inout Box, collectives: TPCollectives) { note("allReduce"); cpu.allReduceSum(&x.v, collectives: collectives) }
        func makeCache(dtype: StorageDType, width: Int, capacity: Int) -> KVCache { cpu.makeCache(dtype: dtype, width: width, capacity: capacity) }
        func buffer(_ values: [Float]) -> Box { note("buffer"); return Box(values) }
        func embed(_ table: Tensor, ids: [Int], width: Int) -> Box { note("embed"); return Box(cpu.embed(table, ids: ids, width: width)) }
        func add(_ x: inout Box, _ y: Box, count: Int) { cpu.add(&x.v, y.v, count: count) }
        func swiGLU(_ gate: inout Box, _ up: Box, count: Int) { note("swiGLU"); cpu.swiGLU(&gate.v, up.v, count: count) }
        func host(_ x: Box, count: Int) -> [Float] { note("host"); return cpu.host(x.v, count: count) }
    }

    static func model(_ c: AttentionConfig) -> AttentionConfig {
        var c = c
        (c.nLayer, c.intermediateSize, c.vocabSize) = (2, 28, 37)
        return c
    }

    /// Every variant's model on shared buffers equals `DecoderShard` bit for bit: a prefill,
    /// then a batched decode step of sequences at different lengths (f16 caches, so the
    /// appends convert). Per forward call the plan crosses to the host once (the logits) and
    /// takes the ids once (`embed`).
    func testModelOnSharedBuffersEqualsTheCPUModel() throws {
        for c in Shapes.all {
            let layout = try ModelLayout(config: Self.model(c))
            let weights = SeededWeights(seed: 5)
            let cpu = try DecoderShard(layout: layout, tp: 1, rank: 0, weights: weights)
            let backend = SharedBufferBackend()
            let shared = try DecoderModel(layout: layout, tp: 1, rank: 0, weights: weights, on: backend)
            XCTAssertEqual(shared.weightBytes, cpu.weightBytes)
            let kernel = PlainAttentionKernel()
            let prompts = [[3, 1, 4], [1], [5, 9]]
            let cpuCaches = prompts.map { _ in cpu.makeCaches(dtype: .f16, capacity: 8) }
            let sharedCaches = try prompts.map { _ in try shared.makeCaches(dtype: .f16, capacity: 8, on: backend) }
            var a = [Float](), b = [Float]()
            for (s, p) in prompts.enumerated() {
                a += cpu.forward(tokens: [p], caches: [cpuCaches[s]], kernel: kernel, collectives: SingleProcess())
                b += shared.forward(tokens: [p], caches: [sharedCaches[s]], on: backend, attention: kernel, collectives: SingleProcess())
            }
            let step = [[2], [6], [0]]
            a += cpu.forward(tokens: step, caches: cpuCaches, kernel: kernel, collectives: SingleProcess())
            b += shared.forward(tokens: step, caches: sharedCaches, on: backend, attention: kernel, collectives: SingleProcess())
            // Two sequences of several tokens in one call: each sequence's last row is taken.
            a += cpu.forward(tokens: [[7, 8], [1, 2, 3]], caches: Array(cpuCaches.prefix(2)), kernel: kernel, collectives: SingleProcess())
            b += shared.forward(tokens: [[7, 8], [1, 2, 3]], caches: Array(sharedCaches.prefix(2)), on: backend, attention: kernel,
                                collectives: SingleProcess())
            XCTAssertEqual(a, b, "\(c.variant) h \(c.nHead)")
            XCTAssertEqual(a.count, (3 + 3 + 2) * 37)
            let calls = prompts.count + 2
            XCTAssertEqual(backend.issued["host"], calls, "\(c.variant): one host crossing per call (the logits)")
            XCTAssertEqual(backend.issued["embed"], calls)
            XCTAssertEqual(backend.issued["swiGLU"], calls * layout.nLayer)
            XCTAssertEqual(backend.issued["buffer"], nil, "the model takes ids, not host rows")
        }
    }

    /// Greedy decoding through `greedy` equals the loop `mlra generate` ran before it was
    /// written once for every backend: argmax of the last logits fed back, one step each.
    func testGreedyEqualsTheStepLoop() throws {
        for c in [Shapes.latent(.mlra4, h: 4, dc: 64, dn: 8, dr: 4), Shapes.grouped(.gqa, h: 6, group: 3)] {
            let layout = try ModelLayout(config: Self.model(c))
            let model = try DecoderShard(layout: layout, tp: 1, rank: 0, weights: SeededWeights(seed: 9))
            let kernel = PlainAttentionKernel()
            let prompt = [3, 1, 4, 1, 5], count = 6
            let caches = model.makeCaches(dtype: .bf16, capacity: prompt.count + count)
            let run = model.greedy(prompt: prompt, count: count, caches: caches, on: CPUBackend(), attention: kernel, collectives: SingleProcess())

            let fresh = model.makeCaches(dtype: .bf16, capacity: prompt.count + count)
            var ids = [Int](), all = [Float]()
            var logits = model.forward(tokens: [prompt], caches: [fresh], kernel: kernel, collectives: SingleProcess())
            for k in 0..<count {
                ids.append(argmax(logits[...]))
                all += logits
                if k + 1 < count { logits = model.forward(tokens: [[ids.last!]], caches: [fresh], kernel: kernel, collectives: SingleProcess()) }
            }
            XCTAssertEqual(run.ids, ids, "\(c.variant)")
            XCTAssertEqual(run.logits, all, "\(c.variant)")
            XCTAssertEqual(caches.map(\.length), [Int](repeating: prompt.count + count - 1, count: layout.nLayer))
        }
    }

    /// A layer run as `mlra forward` runs it (prefill, then decode steps) on shared buffers
    /// equals the CPU's, for every variant: the host rows go in and come back once per call.
    func testLayerRunOnSharedBuffersEqualsTheCPURun() throws {
        for c in Shapes.all {
            let layout = try c.layout()
            let plan = try layout.shard(tp: 1, rank: 0)
            let weights = SeededWeights(seed: 4)
            let cpu = try layout.makeShard(plan, weights: weights, prefix: "")
            let backend = SharedBufferBackend()
            let shared = try layout.makeShard(plan, weights: weights, prefix: "", on: backend)
            let tokens = 5, x = randomInput(tokens: tokens, width: layout.nEmbd, seed: 3)
            let a = runSequence(cpu, x: x, tokens: tokens, prefill: 2, cache: cpu.makeCache(dtype: .bf16, capacity: tokens),
                                kernel: PlainAttentionKernel())
            let b = runSequence(shared, x: x, tokens: tokens, prefill: 2, cache: KVCache(dtype: .bf16, width: shared.cacheWidth, capacity: tokens),
                                on: backend, attention: PlainAttentionKernel())
            XCTAssertEqual(a, b, "\(c.variant) h \(c.nHead)")
            XCTAssertEqual(backend.issued["buffer"], 1 + tokens - 2)
            XCTAssertEqual(backend.issued["host"], 1 + tokens - 2)
        }
    }
}
