/// Deterministic weights from one seed, with random access: element k of tensor
/// `name` is a pure function of (seed, name, k). Every rank can therefore
/// generate exactly its own shard and still hold the same numbers as a
/// single-process run (Megatron's "slice the same stream" property, without
/// generating the full tensor on every rank).
public struct SeededInit: Sendable {
    public let seed: UInt64
    public init(seed: UInt64) { self.seed = seed }

    /// How a parameter is initialised.
    public enum Kind: Equatable, Sendable {
        /// U(-1, 1) / sqrt(fanIn): keeps activations O(1) through a projection.
        case linear(fanIn: Int)
        /// 1 + 0.1·U(-1, 1): a norm gain away from 1 so that tests see it.
        case norm
        /// U(-1, 1): token embeddings.
        case embedding
    }

    /// Uniform in [-1, 1) for element `index` of tensor `name`.
    @inline(__always)
    public func uniform(nameKey: UInt64, index: Int) -> Float {
        let z = splitMix64(nameKey &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15)
        // 24 random bits -> [0, 1) exactly representable in f32.
        return Float(z >> 40) * (1.0 / 16_777_216.0) * 2 - 1
    }

    public func nameKey(_ name: String) -> UInt64 {
        // FNV-1a over the UTF-8 name, then mixed with the seed.
        splitMix64(fnv1a64(Array(name.utf8)) ^ splitMix64(seed))
    }

    /// The box `ranges` of the tensor `name` of full shape `shape`.
    public func tensor(_ name: String, shape: [Int], kind: Kind, ranges: [Range<Int>]? = nil) -> Tensor {
        let box = ranges ?? shape.map { 0..<$0 }
        let key = nameKey(name)
        let (scale, offset): (Float, Float) = switch kind {
        case .linear(let fanIn): (1 / Float(fanIn).squareRoot(), 0)
        case .norm: (0.1, 1)
        case .embedding: (1, 0)
        }
        var data = [Float]()
        data.reserveCapacity(box.map(\.count).reduce(1, *))
        forEachIndex(in: box, shape: shape) { data.append(offset + scale * uniform(nameKey: key, index: $0)) }
        return Tensor(shape: box.map(\.count), data: data)
    }
}

/// FNV-1a, 64 bits: a short stable hash of some bytes (names, resume keys, kernel
/// sources); not cryptographic, it only has to tell honest inputs apart.
public func fnv1a64<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

@inline(__always)
func splitMix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
