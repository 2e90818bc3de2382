import Foundation
import MLRACore
import MLRACuda
import MLRAParallel

/// The sweep's cuda configurations: kernel scope on each rank's GPU, through the same
/// workload, checks and timing as `mlra bench --device cuda` (GPUKernelWorkload,
/// GPUValidation.beforeTiming, GPUTiming).
extension SweepDriver {
    /// Every rank binds its GPU (node-local rank mod visible GPUs, as `forward --device
    /// cuda` does under MPI) and opens NVRTC when the sweep has a cuda configuration that
    /// can run. A machine without a GPU (or NVRTC) refuses the sweep here, on every rank,
    /// before any output is touched.
    func bindGPUs(for configs: [SweepConfig]) throws {
        guard configs.contains(where: { $0.device == .cuda && $0.skipReason() == nil }) else { return }
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
            m.columns["gpu_kernel"] = work.attention.summary
            for (k, v) in zip(CUDADevice.csvColumns, gpu.csvFields(clocks: clocks)) { m.columns[k] = v }
        }
        return m
    }
}
