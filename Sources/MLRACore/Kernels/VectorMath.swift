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
    p = SIMD16(repeating: 1.3981999507e-3).addingProduct(p, r)
    p = SIMD16(repeating: 8.3334519073e-3).addingProduct(p, r)
    p = SIMD16(repeating: 4.1665795894e-2).addingProduct(p, r)
    p = SIMD16(repeating: 1.6666665459e-1).addingProduct(p, r)
    p = SIMD16(repeating: 5.0000001201e-1).addingProduct(p, r)
    let y = (r + 1).addingProduct(p, r * r)
    let nInt = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let bits = (nInt &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: SIMD16<Float>.self)
}

/// exp of one value through the same code path, for tails and corrections.
@inline(__always)
func fastExp(_ x: Float) -> Float { fastExp(SIMD16(repeating: x))[0] }

/// Lane-wise max by compare-and-select (the stdlib's pointwiseMax is a per-lane loop).
/// One overload per concrete type: inside a generic function `.>` binds to the SIMD
/// protocol's generic comparison, a per-lane loop through the stack (seen in perf as
/// most of the softmax time); on a concrete type it is one vcmpps + vblendvps.
@inline(__always)
func laneMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: b .> a) }
@inline(__always)
func laneMax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .> a) }
@inline(__always)
func laneMax(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> { a.replacing(with: b, where: b .> a) }
@inline(__always)
func laneMax(_ a: SIMD2<Float>, _ b: SIMD2<Float>) -> SIMD2<Float> { a.replacing(with: b, where: b .> a) }
