import Foundation

/// A safetensors file (https://github.com/huggingface/safetensors format):
/// 8-byte little-endian header length N, N bytes of JSON
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
/// then the data. Reading validates everything before any tensor is used:
/// header bounds, JSON, dtypes, shapes against byte counts, offsets inside the
/// data and no two tensors overlapping.
public struct SafeTensorsFile {
    public struct Entry: Equatable {
        public let dtype: StorageDType
        public let shape: [Int]
        public let byteRange: Range<Int>   // relative to the start of the data section
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let bytes: Data
    private let dataStart: Int

    /// Largest header we accept; the format's own reference implementation uses 100 MB.
    static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw HarnessError("\(path): no such file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw HarnessError("\(path): cannot read (\(error.localizedDescription))")
        }
        try self.init(bytes: data, path: path)
    }

    public init(bytes data: Data, path: String = "<memory>") throws {
        self.path = path
        self.bytes = data
        func fail(_ why: String) -> HarnessError { HarnessError("\(path): not a valid safetensors file: \(why)") }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard n <= UInt64(Self.maxHeaderBytes) else { throw fail("header length \(n) exceeds the limit of \(Self.maxHeaderBytes) bytes") }
        guard 8 + Int(n) <= data.count else {
            throw fail("header length \(n) runs past the end of the \(data.count)-byte file")
        }
        dataStart = 8 + Int(n)
        let dataBytes = data.count - dataStart
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + dataStart))
        // StrictJSON, not JSONSerialization: that one keeps the last of two entries with the
        // same name (a tensor silently vanishes) and reads `true` in a shape as 1.
        let root: StrictJSON.Value
        do { root = try StrictJSON.parse(headerData) } catch let e as StrictJSON.ParseError {
            guard let key = e.duplicateKey.map(Self.printable) else { throw fail("header is not JSON (\(e.message))") }
            throw fail(e.path.isEmpty ? "tensor name '\(key)' appears twice in the header"
                                      : "entry '\(Self.printable(e.path[0]))' has key '\(key)' twice")
        }
        guard let members = root.members else { throw fail("header is not a JSON object") }
        var entries = [String: Entry]()
        var metadata = [String: String]()
        for member in members {
            let (rawName, value) = (member.key, member.value)
            let name = Self.printable(rawName)
            if rawName == "__metadata__" {
                guard let m = value.members else { throw fail("__metadata__ is not an object") }
                for kv in m {
                    guard case .string(let s) = kv.value else { throw fail("__metadata__ value for '\(Self.printable(kv.key))' is not a string") }
                    metadata[kv.key] = s
                }
                continue
            }
            guard value.members != nil else { throw fail("entry '\(name)' is not an object") }
            guard case .string(let dtypeName)? = value["dtype"] else { throw fail("entry '\(name)' has no dtype") }
            guard let dtype = StorageDType(safetensorsName: dtypeName) else {
                throw fail("entry '\(name)' has dtype '\(Self.printable(dtypeName))'; supported are F32, F16, BF16")
            }
            guard case .array(let shapeItems)? = value["shape"], let shape = Self.integers(shapeItems), shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("entry '\(name)' has a malformed shape (it must be a list of non-negative integers)")
            }
            guard case .array(let offItems)? = value["data_offsets"], let off = Self.integers(offItems), off.count == 2 else {
                throw fail("entry '\(name)' has malformed data_offsets")
            }
            guard off[0] >= 0, off[0] <= off[1], off[1] <= dataBytes else {
                throw fail("entry '\(name)' data_offsets [\(off[0]), \(off[1])] lie outside the \(dataBytes)-byte data section")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            let (size, sizeOverflow) = count.multipliedReportingOverflow(by: dtype.bytes)
            guard !overflow, !sizeOverflow, size == off[1] - off[0] else {
                throw fail("entry '\(name)' shape \(shape) (\(dtype.safetensorsName)) needs \(overflow || sizeOverflow ? "too many" : String(size)) bytes but data_offsets span \(off[1] - off[0])")
            }
            entries[rawName] = Entry(dtype: dtype, shape: shape, byteRange: off[0]..<off[1])
        }
        // A zero-length tensor occupies no bytes, so it overlaps nothing; the others are
        // checked in a total order (start, end, name), so the verdict and the pair named
        // never depend on the order of a dictionary.
        let sorted = entries.filter { !$0.value.byteRange.isEmpty }.sorted {
            ($0.value.byteRange.lowerBound, $0.value.byteRange.upperBound, $0.key) < ($1.value.byteRange.lowerBound, $1.value.byteRange.upperBound, $1.key)
        }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.value.byteRange.upperBound > b.value.byteRange.lowerBound {
            throw fail("tensors '\(Self.printable(a.key))' and '\(Self.printable(b.key))' overlap in the data section")
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// A name from the file as it may appear in a one-line message: control
    /// characters escaped, at most 120 characters.
    public static func printable(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u.properties.generalCategory == .control || u == "\u{2028}" || u == "\u{2029}" {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else { out.unicodeScalars.append(u) }
        }
        return out.count > 120 ? String(out.prefix(117)) + "..." : out
    }

    /// Integers as written (not bools, not 1.0), each at most 2^53: beyond that JSON
    /// readers disagree on a number's value (most read it as a Double).
    private static func integers(_ values: [StrictJSON.Value]) -> [Int]? {
        var out = [Int]()
        for v in values {
            guard let n = v.integer, n >= -(1 << 53), n <= 1 << 53 else { return nil }
            out.append(n)
        }
        return out
    }

    /// The header entry of tensor `name` (dtype, shape, bytes), read without touching its data,
    /// so callers can check what loading it would cost first.
    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw HarnessError("\(path): missing tensor '\(Self.printable(name))'") }
        return e
    }

    /// The tensor `name` converted to f32, checked against `expectedShape` when given.
    public func tensor(_ name: String, expectedShape: [Int]? = nil) throws -> Tensor {
        let e = try entry(name)
        if let expected = expectedShape, expected != e.shape {
            throw HarnessError("\(path): tensor '\(Self.printable(name))' has shape \(e.shape), expected \(expected)")
        }
        let count = e.shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        let start = dataStart + e.byteRange.lowerBound
        bytes.withUnsafeBytes { raw in
            let src = raw.baseAddress! + start
            out.withUnsafeMutableBufferPointer { dst in
                switch e.dtype {
                case .f32:
                    for i in 0..<count { dst[i] = src.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
                case .f16:
                    for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: Float16.self)) }
                case .bf16:
                    for i in 0..<count { dst[i] = BFloat16(bits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)).float }
                }
            }
        }
        return Tensor(shape: e.shape, data: out)
    }

    /// Serialises tensors (stored as `dtype`) into safetensors bytes; names in sorted order.
    public static func encode(_ tensors: [String: Tensor], dtype: StorageDType = .f32,
                              metadata: [String: String] = [:]) throws -> Data {
        var header = [String: Any]()
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            let size = t.count * dtype.bytes
            header[name] = ["dtype": dtype.safetensorsName, "shape": t.shape, "data_offsets": [offset, offset + size]] as [String: Any]
            offset += size
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }   // pad so the data is 8-byte aligned
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let t = tensors[name]!
            switch dtype {
            case .f32: t.data.withUnsafeBytes { out.append(contentsOf: $0) }
            case .f16: t.data.map { Float16($0) }.withUnsafeBytes { out.append(contentsOf: $0) }
            case .bf16: t.data.map { BFloat16($0).bits }.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// Writes a safetensors file atomically (temporary file, then rename), so a
    /// crash never leaves a half-written output behind.
    public static func write(_ tensors: [String: Tensor], to path: String, dtype: StorageDType = .f32,
                             metadata: [String: String] = [:]) throws {
        let data = try encode(tensors, dtype: dtype, metadata: metadata)
        try writeAtomically(data, to: path)
    }
}

public enum SafeTensors {
    /// NaN or Inf never becomes a result: refuse with the first bad index.
    public static func checkFinite(_ values: [Float], what: String) throws {
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw HarnessError("\(what) contains \(values[i]) at element \(i); refusing to use it")
        }
    }
}
