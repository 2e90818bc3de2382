import ArgumentParser
import MLRABench
import MLRACore
import MLRACuda

/// Where a command's attention kernel runs (MLRABench's DeviceKind, also the sweep's grid key).
extension DeviceKind: ExpressibleByArgument {}
/// The library of a cuda configuration's all-reduces (sweep --collective).
extension Collective: ExpressibleByArgument {}

extension GPUKernelPath: ExpressibleByArgument {}

/// --device and the GPU kernel's launch overrides (shared by bench, forward, selftest).
struct GPUOptions: ParsableArguments {
    @Option(help: "cpu or cuda (each rank drives GPU <node-local rank> mod <visible GPUs>).")
    var device: DeviceKind = .cpu
    @Option(name: .customLong("gpu-kernel"), help: "GPU kernel: wgmma-solo (Hopper, MLA family with values ≤ 256 wide), wgmma (Hopper, MLA family), wgmma-solo-q and wgmma-q (the same with the query image, programmatic launches, a one-pass merge and, for values ≤ 128 wide, three warpgroups), warps-pdl (Hopper: warps with the one-pass merge as a programmatic dependent), warps or mma (16-bit caches, tensor cores), f32 or plain (reference); default: chosen from the device, the cache dtype and the group's shape.")
    var gpuKernel: GPUKernelPath?
    @Option(name: .customLong("gpu-tile"), help: "Tokens per tile of the GPU kernel (wgmma: per warpgroup, 32 or 64; default: the largest that fits).")
    var gpuTile: Int?
    @Option(name: .customLong("gpu-stages"), help: "Shared-memory stages of the tensor-core kernel (2-6; default: the most that fit, at most 3 for warps and mma, 6 for wgmma-solo).")
    var gpuStages: Int?
    @Option(name: .customLong("gpu-splits"), help: "Split-KV count (default: enough blocks to fill every SM once).")
    var gpuSplits: Int?
    @Option(name: .customLong("gpu-warps"), help: "Warps per block of the warp-register kernel (a multiple of its head tiles).")
    var gpuWarps: Int?
    @Option(name: .customLong("gpu-heads-per-block"), help: "Heads per block of the tensor-core kernels (default: all of a group's, up to 64).")
    var gpuHeadsPerBlock: Int?

    func validate() throws {
        for (v, n) in [(gpuTile, "--gpu-tile"), (gpuStages, "--gpu-stages"), (gpuSplits, "--gpu-splits"), (gpuWarps, "--gpu-warps"), (gpuHeadsPerBlock, "--gpu-heads-per-block")] {
            if let v, v < 1 { throw ValidationError("\(n) must be at least 1, got \(v)") }
        }
        if let t = gpuTile, t % 16 != 0 { throw ValidationError("--gpu-tile must be a multiple of 16, got \(t)") }
        if let s = gpuStages, s < 2 || s > 6 { throw ValidationError("--gpu-stages must lie in 2...6, got \(s)") }
        if device == .cpu, gpuKernel != nil || gpuTile != nil || gpuStages != nil || gpuSplits != nil || gpuWarps != nil || gpuHeadsPerBlock != nil {
            throw ValidationError("--gpu-kernel, --gpu-tile, --gpu-stages, --gpu-splits and --gpu-warps need --device cuda")
        }
    }

    var tuning: GPUTuning { GPUTuning(tile: gpuTile, stages: gpuStages, splits: gpuSplits, path: gpuKernel, warps: gpuWarps,
                                     headsPerBlock: gpuHeadsPerBlock) }
}
