/// One sequence's KV cache on one rank: `length` rows of `width` elements stored
/// as `dtype`. What a row holds is fixed by the layout: the rank's scaled,
/// normalised latent blocks plus the rotated RoPE key (MLA family), or K and V
/// of its KV heads (GQA family). Nothing per-head is ever cached for the MLA family.
public final class KVCache {
    public let dtype: StorageDType
    public let width: Int
    public private(set) var capacity: Int
    public private(set) var length: Int = 0
    public private(set) var storage: UnsafeMutableRawPointer

    static let alignment = 64

    public init(dtype: StorageDType, width: Int, capacity: Int) {
        precondition(width > 0 && capacity >= 0)
        self.dtype = dtype
        self.width = width
        self.capacity = max(capacity, 1)
        storage = .allocate(byteCount: self.capacity * width * dtype.bytes, alignment: Self.alignment)
    }

    deinit { storage.deallocate() }

    /// Bytes per cached token (one row).
    public var rowBytes: Int { width * dtype.bytes }
    /// Bytes allocated for the cache storage.
    public var allocatedBytes: Int { capacity * rowBytes }

    /// Appends one row given in f32, converting to the storage dtype.
    public func append(_ row: UnsafePointer<Float>) {
        if length == capacity { grow(to: capacity * 2) }
        let dst = storage + length * rowBytes
        switch dtype {
        case .f32: Float.store(row, into: dst.assumingMemoryBound(to: Float.self), count: width)
        case .f16: Float16.store(row, into: dst.assumingMemoryBound(to: Float16.self), count: width)
        case .bf16: BFloat16.store(row, into: dst.assumingMemoryBound(to: BFloat16.self), count: width)
        }
        length += 1
    }

    /// Fills rows length ..< newLength with values from `value(row, col)` (benchmarks
    /// and tests that need a cache of a given length without running projections).
    public func fill(toLength newLength: Int, _ value: (Int, Int) -> Float) {
        var row = [Float](repeating: 0, count: width)
        while length < newLength {
            for c in 0..<width { row[c] = value(length, c) }
            append(row)
        }
    }

    /// Fills rows length ..< newLength with SeededInit's values of tensor `name`, element
    /// (row, col) at index row·width + col: the deterministic contents of every benchmark
    /// and validation cache, which the GPU fills on the device with the same formula
    /// (MLRACuda/kernels/cache_fill.cu) so that CPU and GPU caches hold the same bytes.
    public func fillSeeded(_ initializer: SeededInit, name: String, toLength newLength: Int) {
        let key = initializer.nameKey(name), w = width
        fill(toLength: newLength) { j, c in initializer.uniform(nameKey: key, index: j &* w &+ c) }
    }

    /// The seeded name of kernel-scope cache set `set`, sequence `sequence` (CPU and GPU workloads).
    public static func kernelCacheName(set: Int, sequence: Int) -> String { "cache.\(set).\(sequence)" }

    /// The seeded name of a layer- or model-scope cache (CPU and GPU workloads): set 0 keeps
    /// the name it had before there were sets, so a warm workload holds the same values as
    /// before and as a cold one's first set; the other sets get values of their own.
    public static func rotatedName(_ scope: String, set: Int, _ indices: Int...) -> String {
        ([scope] + (set == 0 ? [] : ["set\(set)"]) + indices.map(String.init)).joined(separator: ".")
    }

    /// Row `j` converted to f32 into `dst`.
    public func loadRow(_ j: Int, into dst: UnsafeMutablePointer<Float>) {
        precondition(j < length)
        let src = storage + j * rowBytes
        switch dtype {
        case .f32: Float.load(src.assumingMemoryBound(to: Float.self), into: dst, count: width)
        case .f16: Float16.load(src.assumingMemoryBound(to: Float16.self), into: dst, count: width)
        case .bf16: BFloat16.load(src.assumingMemoryBound(to: BFloat16.self), into: dst, count: width)
        }
    }

    private func grow(to newCapacity: Int) {
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * rowBytes, alignment: Self.alignment)
        fresh.copyMemory(from: storage, byteCount: length * rowBytes)
        storage.deallocate()
        storage = fresh
        capacity = newCapacity
    }
}
