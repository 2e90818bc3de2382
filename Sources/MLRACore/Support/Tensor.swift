/// A dense row-major f32 tensor: the harness's only array type outside the KV cache.
public struct Tensor: Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }

    /// Copy of the box `ranges` (one range per dimension) as a new tensor.
    public func slice(_ ranges: [Range<Int>]) -> Tensor {
        precondition(ranges.count == shape.count)
        let outShape = ranges.map(\.count)
        var out = [Float]()
        out.reserveCapacity(outShape.reduce(1, *))
        forEachIndex(in: ranges, shape: shape) { out.append(data[$0]) }
        return Tensor(shape: outShape, data: out)
    }

    /// Rows `rows` of a 2-D tensor.
    public func rows(_ rows: Range<Int>) -> Tensor { slice([rows, 0..<shape[1]]) }

}

/// Calls `body` with the flat row-major index of every element of the box `ranges`
/// inside a tensor of `shape`, in row-major order.
@inline(__always)
func forEachIndex(in ranges: [Range<Int>], shape: [Int], _ body: (Int) -> Void) {
    if ranges.contains(where: \.isEmpty) { return }
    var strides = [Int](repeating: 1, count: shape.count)
    for k in stride(from: shape.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * shape[k + 1] }
    var idx = ranges.map(\.lowerBound)
    let last = shape.count - 1
    while true {
        var base = 0
        for k in 0..<last { base += idx[k] * strides[k] }
        for j in ranges[last] { body(base + j) }
        var k = last - 1
        while k >= 0 {
            idx[k] += 1
            if idx[k] < ranges[k].upperBound { break }
            idx[k] = ranges[k].lowerBound
            k -= 1
        }
        if k < 0 { return }
    }
}
