import Foundation
import MLRACore
import MLRACuda
import MLRAParallel

/// The sweep's cuda configurations: kernel scope on each rank's GPU, through the same
/// workload, checks and timing as `mlra bench --device cuda` (GPUKernelWorkload,
/// GPUValidation.beforeTiming, GPUTiming); layer scope through the sharded layer on the
/// GPU (GPULayerWorkload) and the CPU's timing protocol.
extension SweepDriver {
    /// Every rank binds its GPU (node-local rank mod visible GPUs, as `forward --device
    /// cuda` does under MPI) and opens NVRTC when the sweep has a cuda configuration that
    /// can run. A machine without a GPU (or NVRTC) refuses the sweep here, on every rank,
    /// before any output is touched.
    func bindGPUs(for configs: [SweepConfig]) throws {
        try world.collectively {
            if options.collective == .nccl && !configs.contains(where: { $0.device == .cuda }) {
                throw HarnessError.usage("--collective nccl applies to cuda configurations (--devices cuda); this sweep has none")
            }
        }
        guard configs.contains(where: { $0.device == .cuda && $0.skipReason() == nil }) else { return }
        // The libraries first: a missing NCCL is one line on any node, with or without a GPU.
        if options.collective == .nccl { _ = try world.collectively { try NCCL.load() } }
        let local = (rank: topology.localRank, size: topology.localSize)   // set by run() before binding
        gpu = try world.collectively { () throws -> CUDADevice in
            let device = try CUDADevice(localRank: local.rank, localSize: local.size, flag: "--devices cuda")
            try KernelCompiler.shared.load()
            return device
        }
    }

    /// A cuda configuration whose workload does not fit in free device memory, with the
    /// bytes (ranks sharing a GPU need it together), or nil; agreed by every rank. The
    /// footprint is the busiest rank's, as on the CPU; a size beyond an Int is left to the
    /// workload to refuse, since every rank must reach the agreement.
    func gpuMemoryShortfall(_ c: SweepConfig) throws -> String? {
        let p = try placement(c)
        var message = ""
        if p.active, let gpu, let need = try? c.footprint(backend: .gpu(l2Bytes: gpu.l2Bytes, smCount: gpu.smCount)) {
            let ranks = c.isDeviceShare ? 1 : gpu.ranksSharing
            let free = (try? gpu.freeMemoryBytes()) ?? 0
            if need.total * ranks > free {
                message = String(format: "needs %.2f GB of device memory per rank (× %d rank(s) on %@); %.2f GB are free",
                                 Double(need.total) / 1e9, ranks, gpu.name, Double(free) / 1e9) + " (per rank: \(need.breakdown))"
            }
        }
        let short = world.allGatherDoubles([message.isEmpty ? 0 : 1])
        guard let first = short.firstIndex(of: 1) else { return nil }
        return world.broadcast(message, root: first)
    }

    /// A cuda configuration (kernel scope): each taking part rank builds its shard's
    /// caches on its GPU, validates the kernel (against the CPU plain kernel, then the
    /// device reference at the full context), reads the clocks, and times it with CUDA
    /// events. The ranks of a group time together (concurrent) or in turn (isolated);
    /// per step the max over the group. Step times are the launched steps (what an eager
    /// decoder pays), kernel times the CUDA-graph replays (the kernels' own time, which
    /// the roofline columns use, as bench does).
    func measureOnGPU(_ c: SweepConfig, layout: any AttentionLayout, _ p: Placement) throws -> Measurement {
        guard let gpu else { throw HarnessError("\(c.label): no GPU is bound") }
        if c.scope == .layer { return try measureLayerOnGPU(c, layout: layout, p, gpu: gpu) }
        if c.scope == .model { return try measureModelOnGPU(c, p, gpu: gpu) }
        let built = try world.collectively { () throws -> (work: GPUKernelWorkload, checks: [GPUValidation.Result])? in
            guard p.active else { return nil }
            do {
                let shard = try layout.shard(tp: c.tp, rank: try planRank(c, layout, p))
                let work = try GPUKernelWorkload(device: gpu, layout: layout, shard: shard, dtype: c.dtype,
                                                 lengths: Array(repeating: c.context, count: p.sequences), coldCache: c.coldCache)
                return (work, try GPUValidation.beforeTiming(work, full: true))
            } catch let e as HarnessError { throw HarnessError("\(c.label): \(e.message)") }
        }
        var m = Measurement()
        m.maxError = world.allReduce(built?.checks.map(\.maxError).max() ?? 0, max: true)

        let clocks = p.active ? gpu.clocksMHz() : nil   // before timing: the clocks the samples ran at (boost may drop under load)
        var local: GPUTiming.Samples?, failure: HarnessError?
        func time() {
            guard let work = built?.work else { return }
            do {
                local = try GPUTiming.run(work, warmup: c.warmup, steps: c.steps)
                guard try work.outputs().allSatisfy(\.isFinite) else { throw HarnessError("the GPU kernel produced non-finite outputs") }
            } catch let e as HarnessError { failure = HarnessError("\(c.label): \(e.message)") } catch {
                failure = HarnessError("\(c.label): \(error)")
            }
        }
        if c.timingMode == .concurrent {
            if p.active, let group = p.groups?.group { group.barrier(); time() }
            world.quietBarrier()
        } else {
            TimingProtocol.inTurn(world: world, time)
        }
        try world.collectively { if let failure { throw failure } }

        if let local {
            let launched = local.launched, graph = local.graph
            // One device's share is rank 0 alone; a group's step ends when its slowest rank ends.
            if c.isDeviceShare || p.groups == nil {
                m.samples = StepSamples(step: launched, kernel: graph, collective: [Double](repeating: 0, count: launched.count))
            } else if let group = p.groups?.group {
                m.samples = StepSamples(step: group.allReduceMax(launched), kernel: group.allReduceMax(graph),
                                        collective: [Double](repeating: 0, count: launched.count))
            }
        }
        if p.reporter, let work = built?.work {
            m.setTolerance(Tolerance.gpuKernelAgreement(cache: c.dtype))   // GPUValidation's, at both lengths
            m.columns["gpu_kernel"] = work.attention.summary
            for (k, v) in zip(CUDADevice.csvColumns, gpu.csvFields(clocks: clocks)) { m.columns[k] = v }
        }
        return m
    }
}

/// What the timing protocol steps on a GPU in layer or model scope: the rank's sharded
/// layer (`GPULayerWorkload`) or decoder (`GPUModelWorkload`) on its `CUDABackend`.
protocol GPUScopeWork: AnyObject {
    /// One decode step of the rank's sequences, waited for; GPU seconds by CUDA events.
    func step(collectives: TPCollectives) throws -> CUDABackend.StepTimes
    var weightBytes: Int { get }
    var backend: CUDABackend { get }
    var attention: GPUAttention { get }
    /// The collectives one step issues (StepWorkload's).
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { get }
    /// How the step's other work runs, for the gpu_kernel column.
    var plan: String { get }
}

extension GPUScopeWork {
    /// The cuBLAS products, for the gpu_kernel column.
    var products: String {
        "cuBLAS \(backend.cublasVersion) " + (backend.gemmType == .f32 ? "sgemm, f32 weights"
            : "GemmEx, \(backend.gemmType.rawValue) weights and activations, f32 accumulation")
    }
}

extension GPULayerWorkload: GPUScopeWork {
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { ([sequences * layout.nEmbd], nil) }
    var plan: String { "projections: " + products }
}

extension GPUModelWorkload: GPUScopeWork {
    /// As the CPU's ModelStep: two all-reduces a layer, one gather of the logits.
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) {
        ([Int](repeating: sequences * layout.nEmbd, count: layout.allReducesPerStep), sequences * layout.vocabSize)
    }
    var plan: String { "projections, MLP and lm_head: " + products + "; logits gathered on the host" }
}

/// A GPU workload as the timing protocol steps it: a step cannot throw, so its failure is
/// kept and reported after timing (every step still issues its collectives, so the
/// group's other ranks never wait for ever); kernel seconds from CUDA events.
final class GPUStep: StepWorkload, KernelClock {
    let work: any GPUScopeWork
    /// GPU seconds of the attention (`seconds`, the kernel column) and of the projections, summed over steps.
    private(set) var seconds = 0.0
    private(set) var projectionSeconds: [Double] = []
    private(set) var failure: Error?
    init(_ work: any GPUScopeWork) { self.work = work }
    func step(collectives: TPCollectives) {
        do {
            let t = try work.step(collectives: collectives)
            seconds += t.attention
            projectionSeconds.append(t.projections)
        } catch { failure = failure ?? error }
    }
    var weightBytes: Int { work.weightBytes }
    var collectivePattern: (allReduceFloats: [Int], allGatherFloats: Int?) { work.collectivePattern }
}

extension SweepDriver {
    /// A cuda configuration in layer scope: the rank's shard of the layer on its GPU
    /// (weights, caches filled as the CPU layer's), checked against the Double reference
    /// (the CPU's layer check).
    func measureLayerOnGPU(_ c: SweepConfig, layout: any AttentionLayout, _ p: Placement, gpu: CUDADevice) throws -> Measurement {
        let weights = SeededWeights(seed: options.seed)
        return try measureStepsOnGPU(c, p, gpu: gpu, build: { rank in
            try GPULayerWorkload(device: gpu, layout: layout, shard: try layout.shard(tp: c.tp, rank: rank), weights: weights,
                                 dtype: c.dtype, sequences: p.sequences, context: c.context, appending: c.appending,
                                 gemmType: c.gpuGemmType)
        }, check: { work, group in
            try Validation.gpuLayer(c, work: work, weights: weights, group: group, injectError: options.injectValidationError)
        })
    }

    /// A cuda configuration in model scope: the rank's shard of the decoder on its GPU
    /// (weights, every layer's caches filled as the CPU model's), checked against the same
    /// model in one process on the CPU (the CPU's model check).
    func measureModelOnGPU(_ c: SweepConfig, _ p: Placement, gpu: CUDADevice) throws -> Measurement {
        let weights = SeededWeights(seed: options.seed)
        return try measureStepsOnGPU(c, p, gpu: gpu, build: { rank in
            try GPUModelWorkload(device: gpu, layout: ModelLayout(config: c.attentionConfig), tp: c.tp, rank: rank, weights: weights,
                                 dtype: c.dtype, sequences: p.sequences, context: c.context, appending: c.appending,
                                 gemmType: c.gpuGemmType)
        }, check: { work, group in
            try Validation.gpuModel(c, work: work, weights: weights, group: group, injectError: options.injectValidationError)
        })
    }

    /// Layer and model scope on the GPU: each taking part rank builds its workload (`build`,
    /// given its plan rank), the group checks it (`check`), then the timing protocol steps
    /// it as on the CPU: steps by wall clock (each waited for), the kernel by CUDA events,
    /// the all-reduce (on the path `--collective` picks) by the communicator's counters.
    func measureStepsOnGPU<W: GPUScopeWork>(_ c: SweepConfig, _ p: Placement, gpu: CUDADevice, build: (Int) throws -> W,
                                            check validate: (W, Communicator) throws -> ValidationResult) throws -> Measurement {
        let layout = try c.attentionConfig.layout()
        // Built and checked in two agreements: a rank that fails to build (out of memory)
        // must not leave the others waiting in the check's all-reduces.
        let built = try world.collectively { () throws -> W? in
            guard p.active else { return nil }
            do { return try build(try planRank(c, layout, p)) } catch let e as HarnessError { throw HarnessError("\(c.label): \(e.message)") }
        }
        let work = built.map(GPUStep.init)
        // The all-reduce's path, on every rank of the group before the check runs a step.
        let path = try world.collectively { () throws -> String in
            guard let work, let group = p.groups?.group else { return "" }
            do {
                let backend = work.work.backend
                switch c.collective {
                case .mpi: backend.allReduce = .mpi(takesDevicePointers: Communicator.takesDevicePointers)
                case .nccl: backend.allReduce = .nccl(try ncclCommunicator(group: group, gpu: gpu))
                }
                return backend.allReduce.name
            } catch let e as HarnessError { throw HarnessError("\(c.label): \(e.message)") }
        }
        let check = try world.collectively { () throws -> ValidationResult in
            guard let built, let group = p.groups?.group else { return ValidationResult(maxError: 0, violation: nil) }
            do { return try validate(built, group) } catch let e as HarnessError { throw HarnessError("\(c.label): \(e.message)") }
        }
        try world.collectively {
            if let v = check.violation { throw HarnessError("validation failed for \(c.label): \(v)") }
        }
        var m = Measurement()
        m.maxError = world.allReduce(check.maxError, max: true)
        let clocks = p.active ? gpu.clocksMHz() : nil   // before timing, as in kernel scope
        timeSteps(c, p, work, clock: work ?? GPUStep.idle, into: &m)
        try world.collectively {
            if let failure = work?.failure { throw HarnessError("\(c.label): \(failure)") }
        }
        if p.reporter, let work {
            m.setTolerance(check.tolerance)
            m.columns["gpu_kernel"] = work.work.attention.summary + "; " + work.work.plan
            if c.tp > 1 { m.columns["allreduce_path"] = path }
            // The last `steps` steps are the timed ones (warm-up first); this rank's, not the group's max.
            let projections = SampleStats(Array(work.projectionSeconds.suffix(c.steps))).median
            m.columns["projection_us_median"] = fmt(projections * 1e6)
            print(String(format: "  %@: GPU time per step on group rank 0: projections %.1f us median", c.label, projections * 1e6))
            for (k, v) in zip(CUDADevice.csvColumns, gpu.csvFields(clocks: clocks)) { m.columns[k] = v }
        }
        return m
    }
}

extension SweepDriver {
    /// The TP group's NCCL communicator on its GPUs, checked by one all-reduce of known
    /// values. NCCL refuses two ranks of a group on one GPU: that is one line, agreed by
    /// the group, before NCCL is initialised.
    func ncclCommunicator(group: Communicator, gpu: CUDADevice) throws -> NCCLCommunicator {
        if let shared = NCCLCommunicator.sharedGPU(group.allGather(gpu.uuid)) {
            throw HarnessError.usage("--collective nccl needs one GPU per rank of a TP group, but ranks \(shared.first) and "
                + "\(shared.second) of a group of \(group.size) share GPU \(shared.uuid) (NCCL refuses that); run at most as many "
                + "ranks per node as it has GPUs, or use --collective mpi")
        }
        // Rank 0 makes the id and sends it to the group, failed or not, so no rank waits for it.
        var made = "", failure: Error?
        if group.rank == 0 {
            do { made = try NCCL.uniqueId().map { String(format: "%02x", $0) }.joined() } catch { failure = error }
        }
        let hex = Array(group.broadcast(made).utf8)
        guard hex.count == 2 * NCCL.uniqueIdBytes else {
            throw failure ?? HarnessError("rank 0 of the TP group could not make an NCCL unique id")
        }
        let id = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16) ?? 0 }
        let nccl = try NCCLCommunicator(uniqueId: id, rank: group.rank, size: group.size, device: gpu)
        let probe = try DeviceBuffer(bytes: 16, what: "the NCCL check")
        try probe.upload([Float](repeating: Float(group.rank + 1), count: 4))
        try nccl.allReduceSum(probe.pointer, count: 4)
        let sums = try probe.download(Float.self, count: 4), expected = Float(group.size * (group.size + 1) / 2)
        guard sums.allSatisfy({ $0 == expected }) else {
            throw HarnessError("NCCL's check all-reduce of ranks' 1 … \(group.size) gave \(sums), not \(expected) everywhere")
        }
        return nccl
    }
}

extension GPUStep {
    /// The clock of a rank that takes no part (it reads nothing).
    static let idle = TimedKernel(PlainAttentionKernel())
}

extension Validation {
    /// Layer scope on the GPU: the group's sharded layer on its GPUs (a prefill of 2 tokens,
    /// then 2 decode steps, all-reduced) against the Double reference forward on group rank
    /// 0, as `layer` checks the CPU's, with the GPU kernel's rounding added to the tolerance.
    static func gpuLayer(_ config: SweepConfig, work: GPULayerWorkload, weights: WeightSource, group: Communicator,
                         injectError: Bool) throws -> ValidationResult {
        let layout = work.layout, tokens = GPULayerWorkload.checkTokens
        let x = layerCheckInput(layout, tokens: tokens)
        var y = try work.checkOutputs(x, collectives: group)
        guard group.rank == 0 else { return ValidationResult(maxError: 0, violation: nil) }
        if injectError { y[0] += 1 }
        let ref = try ReferenceForward.run(layout, weights: weights, x: x.map(Double.init), tokens: tokens)
        return compare(y, ref, Tolerance.gpuLayerOutput(cache: config.dtype, gemm: work.backend.gemmType))
    }
}

extension Validation {
    /// Model scope on the GPU: the group's sharded model on its GPUs against the same model
    /// in one process on the CPU (the plain kernel), on group rank 0, as `model` checks the
    /// CPU's: the logits after `GPUModelWorkload.checkPrompt` and after one decode step. The
    /// reference is fed the id the group took, so that a near tie cannot send the two down
    /// different tokens. The tolerance is the GPU layer's (`gpuLayerOutput`), scaled as
    /// `model` scales the layer's.
    static func gpuModel(_ config: SweepConfig, work: GPUModelWorkload, weights: WeightSource, group: Communicator,
                         injectError: Bool) throws -> ValidationResult {
        var (logits, next) = try work.checkLogits(collectives: group)
        guard group.rank == 0 else { return ValidationResult(maxError: 0, violation: nil) }
        if injectError { logits[0] += 1 }
        let single = try DecoderShard(layout: work.layout, tp: 1, rank: 0, weights: weights)
        let caches = single.makeCaches(dtype: config.dtype, capacity: GPUModelWorkload.checkPrompt.count + 1)
        let plain = PlainAttentionKernel()
        let ref = single.forward(tokens: [GPUModelWorkload.checkPrompt], caches: [caches], kernel: plain, collectives: SingleProcess())
            + single.forward(tokens: [[next]], caches: [caches], kernel: plain, collectives: SingleProcess())
        return compare(logits, ref.map(Double.init),
                       modelTolerance(Tolerance.gpuLayerOutput(cache: config.dtype, gemm: work.backend.gemmType), reference: ref))
    }
}
