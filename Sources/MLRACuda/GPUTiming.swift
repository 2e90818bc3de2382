import Foundation
import MLRACore

/// The GPU timing protocol (the CPU's is MLRABench/TimingProtocol.swift): `warmup`
/// untimed steps, then `steps` steps each bracketed by CUDA events on the rank's
/// stream, every sample kept. Twice: with the step's kernels launched one by one
/// (what an eager decoder pays), and replayed from a CUDA graph captured per cache
/// set (launch gaps removed); the difference is the launch overhead.
public enum GPUTiming {
    public struct Samples: Sendable {
        /// Seconds per step, kernels launched from the host.
        public var launched: [Double]
        /// Seconds per step, one CUDA graph replay.
        public var graph: [Double]
    }

    public static func run(_ w: GPUKernelWorkload, warmup: Int, steps: Int) throws -> Samples {
        let timer = try EventTimer(stream: w.device.stream)
        for _ in 0..<warmup { try w.launch() }
        try w.device.synchronize()
        var launched = [Double]()
        for _ in 0..<steps { launched.append(try timer.time { try w.launch() }) }

        var graphs = [CapturedGraph]()
        for _ in 0..<w.cacheSets { graphs.append(try CapturedGraph(stream: w.device.stream) { try w.launch() }) }
        for i in 0..<warmup { try graphs[i % graphs.count].replay() }
        try w.device.synchronize()
        var graph = [Double]()
        for i in 0..<steps { graph.append(try timer.time { try graphs[i % graphs.count].replay() }) }
        return Samples(launched: launched, graph: graph)
    }
}
