/// Vectorised exp for the softmax inner loop (a scalar `expf` per score would
/// cost as much as the GEMMs for 64-head MLA tiles). Cephes' expf: range
/// reduction x = n·ln2 + r, a degree-6 polynomial on r, 2ⁿ built in the
/// exponent bits. Relative error ≤ 2 ulp on [−87, 88]; inputs below −87.3
/// give ≈ 1e-38 instead of 0, which the softmax never notices.
@inline(__always)
func fastExp(_ input: SIMD16<Float>) -> SIMD16<Float> {
    // Clamp with compare-and-select: SIMD's clamped()/pointwiseMax go lane by lane through memory.
    let lo = SIMD16<Float>(repeating: -87.3), hi = SIMD16<Float>(repeating: 88.3)
    let x = input.replacing(with: lo, where: input .< lo).replacing(with: hi, where: input .> hi)
    // n = round(x·log2 e) by the 1.5·2²³ trick: the sum's low mantissa bits hold n
    // (a generic SIMD float→int conversion is a slow per-lane library path).
    let shifted = x * 1.44269504088896341 + 12582912
    let n = shifted - 12582912
    var r = x - n * 0.693359375
    r = r + n * 2.12194440e-4
    var p = SIMD16<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let y = p * (r * r) + r + 1
    let nInt = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let bits = (nInt &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: SIMD16<Float>.self)
}

/// exp of one value through the same code path, for tails and corrections.
@inline(__always)
func fastExp(_ x: Float) -> Float { fastExp(SIMD16(repeating: x))[0] }

/// Lane-wise max by compare-and-select (the stdlib's pointwiseMax is a per-lane loop).
@inline(__always)
func laneMax<V: SIMD>(_ a: V, _ b: V) -> V where V.Scalar: FloatingPoint { a.replacing(with: b, where: b .> a) }
