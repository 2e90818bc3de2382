/// Element types the KV cache and safetensors files may store. Arithmetic is always f32.
public enum StorageDType: String, CaseIterable, Sendable {
    case f32, f16, bf16

    public var bytes: Int { self == .f32 ? 4 : 2 }

    /// The dtype's name inside a safetensors header.
    public var safetensorsName: String {
        switch self { case .f32: "F32"; case .f16: "F16"; case .bf16: "BF16" }
    }

    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        default: return nil
        }
    }

    /// Parses a user-supplied name, with an error listing the choices.
    public static func parse(_ text: String) throws -> StorageDType {
        guard let d = StorageDType(rawValue: text.lowercased()) else {
            throw HarnessError("unknown dtype '\(text)'; expected one of f32, f16, bf16")
        }
        return d
    }
}

/// bfloat16: the top 16 bits of an IEEE f32.
public struct BFloat16: Equatable, Sendable {
    public var bits: UInt16
    public init(bits: UInt16) { self.bits = bits }

    /// Round-to-nearest-even from f32; NaN stays NaN.
    @inline(__always)
    public init(_ f: Float) {
        let u = f.bitPattern
        if f.isNaN { bits = UInt16(truncatingIfNeeded: (u >> 16) | 0x40); return }
        let rounding = 0x7FFF &+ ((u >> 16) & 1)
        bits = UInt16(truncatingIfNeeded: (u &+ rounding) >> 16)
    }

    @inline(__always)
    public var float: Float { Float(bitPattern: UInt32(bits) << 16) }
}

/// A storage element of the KV cache: converts to and from f32 in bulk.
public protocol CacheElement {
    static var dtype: StorageDType { get }
    static func load(_ src: UnsafePointer<Self>, into dst: UnsafeMutablePointer<Float>, count: Int)
    static func store(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Self>, count: Int)
}

extension Float: CacheElement {
    public static var dtype: StorageDType { .f32 }
    @inline(__always)
    public static func load(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        dst.update(from: src, count: count)
    }
    @inline(__always)
    public static func store(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        dst.update(from: src, count: count)
    }
}

extension Float16: CacheElement {
    public static var dtype: StorageDType { .f16 }
    @inline(__always)
    public static func load(_ src: UnsafePointer<Float16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float16>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: SIMD8<Float>(v), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count { dst[i] = Float(src[i]); i += 1 }
    }
    @inline(__always)
    public static func store(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float16>, count: Int) {
        for i in 0..<count { dst[i] = Float16(src[i]) }
    }
}

extension BFloat16: CacheElement {
    public static var dtype: StorageDType { .bf16 }
    @inline(__always)
    public static func load(_ src: UnsafePointer<BFloat16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let s = UnsafeRawPointer(src).assumingMemoryBound(to: UInt16.self)
        let d = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt32.self)
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(s + i).loadUnaligned(as: SIMD8<UInt16>.self)
            UnsafeMutableRawPointer(d + i).storeBytes(of: SIMD8<UInt32>(truncatingIfNeeded: v) &<< 16, as: SIMD8<UInt32>.self)
            i += 8
        }
        while i < count { d[i] = UInt32(s[i]) << 16; i += 1 }
    }
    @inline(__always)
    public static func store(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<BFloat16>, count: Int) {
        for i in 0..<count { dst[i] = BFloat16(src[i]) }
    }
}
