import CCuda
import MLRACore

/// The decoder's operations on the GPU (MLRACore's DecoderModel on `CUDABackend`): the
/// residual add, SwiGLU and the embedding lookup are kernels of kernels/layer_ops.cu; the
/// token ids are staged to the device and the logits copied back, the two host crossings
/// of a model step.
struct ModelKernels {
    let add: CUDAFunction, swiGLU: CUDAFunction, gather: CUDAFunction
    /// Blocks of an element-wise launch: enough to fill the GPU, no more than the values need.
    let maxBlocks: Int

    init(device: CUDADevice) throws {
        let f = { (name: String) in try KernelCompiler.shared.function(name, in: .layerOps, arch: device.arch) }
        (add, swiGLU, gather) = (try f("add_values"), try f("swiglu_values"), try f("gather_rows"))
        maxBlocks = device.smCount * 8
    }

    func blocks(_ count: Int) -> Int { max(1, min(maxBlocks, (count + 255) / 256)) }
}

extension CUDABackend {
    public func makeCache(dtype: StorageDType, width: Int, capacity: Int) throws -> DeviceKVCache {
        try DeviceKVCache(dtype: dtype, width: width, capacity: capacity)
    }

    public func buffer(_ values: [Float]) -> DeviceVector { upload(values) }

    public func embed(_ table: DeviceMatrix, ids: [Int], width: Int) -> DeviceVector {
        let out = vector(ids.count * width)
        guard !ids.isEmpty else { return out }
        let staged = stage(ids.map { Int32($0) })
        let args = KernelArguments().add(table.values.pointer).add(staged.pointer).add(Int32(width)).add(table.elem.kernelElem).add(out.pointer)
        attempt { try modelOps.gather.launch(grid: (ids.count, 1, 1), block: min(256, (width + 31) / 32 * 32), stream: device.stream, args) }
        return out
    }

    public func add(_ x: inout DeviceVector, _ y: DeviceVector, count: Int) {
        elementwise(modelOps.add, x, y, count: count)
    }

    public func swiGLU(_ gate: inout DeviceVector, _ up: DeviceVector, count: Int) {
        elementwise(modelOps.swiGLU, gate, up, count: count)
    }

    private func elementwise(_ fn: CUDAFunction, _ x: DeviceVector, _ y: DeviceVector, count: Int) {
        guard count > 0 else { return }
        let args = KernelArguments().add(x.pointer).add(y.pointer).add(UInt64(count))
        attempt { try fn.launch(grid: (modelOps.blocks(count), 1, 1), block: 256, stream: device.stream, args) }
    }

    /// Waits for the stream up to `x` and copies it out. The events of the step are kept for
    /// `finish()`. After a failure: NaNs (the caller's `finish()` reports the failure), so
    /// that every rank still reaches the gather that follows.
    public func host(_ x: DeviceVector, count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        attempt {
            try out.withUnsafeMutableBytes {
                try CUDADriver.check(mlra_cuda.cuMemcpyDtoHAsync!($0.baseAddress!, x.pointer, $0.count, device.stream), "cuMemcpyDtoHAsync")
                try device.synchronize()   // while the array's storage is pinned by the closure
            }
        }
        return out
    }
}
