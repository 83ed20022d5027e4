// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON mapping each tensor name to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" of strings), then the data. Reading validates everything a hostile file
// could get wrong before touching the data; every error names the file and the tensor.
import Foundation

public enum DType: String, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64"

    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .f16, .bf16: 2
        case .i64: 8
        }
    }

    var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

public struct SafetensorsFile {
    public struct Entry: Equatable, Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range within the data section.
        public let begin: Int, end: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Headers beyond this are refused before any allocation (the reference library's limit).
    public static let maximumHeaderLength = 100_000_000

    public let path: String
    public let metadata: [String: String]
    /// The tensors in the order of their data.
    public let entries: [Entry]
    private let bytes: Data
    private let dataStart: Int

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TesseraError("no such file", path: path)
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw TesseraError("cannot read: \(error.localizedDescription)", path: path)
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        self.path = path
        bytes = data
        func fail(_ problem: String) -> TesseraError { TesseraError(problem, path: path) }

        guard data.count >= 8 else { throw fail("not a safetensors file: \(data.count) bytes, shorter than the 8-byte header length") }
        let declared = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(Self.maximumHeaderLength) else {
            throw fail("header length \(declared) exceeds the \(Self.maximumHeaderLength)-byte limit")
        }
        let headerLength = Int(declared)
        guard 8 + headerLength <= data.count else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes): truncated?")
        }
        dataStart = 8 + headerLength
        let dataLength = data.count - dataStart
        let header = data.subdata(in: data.startIndex + 8..<data.startIndex + dataStart)
        guard header.first == UInt8(ascii: "{"),
              let json = try? JSONSerialization.jsonObject(with: header), let object = json as? [String: Any]
        else { throw fail("header is not a JSON object") }

        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let pairs = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (key, item) in pairs {
                    guard let text = item as? String else { throw fail("__metadata__[\(key)] is not a string") }
                    metadata[key] = text
                }
                continue
            }
            entries.append(try Self.parseEntry(name, value, dataLength: dataLength, fail: fail))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        for entry in entries {
            if entry.begin < covered { throw fail("tensor \(entry.name): data [\(entry.begin), \(entry.end)) overlaps another tensor") }
            if entry.begin > covered { throw fail("tensor \(entry.name): unindexed bytes [\(covered), \(entry.begin)) before it") }
            covered = entry.end
        }
        if covered != dataLength { throw fail("\(dataLength - covered) bytes after the last tensor are not indexed") }
        self.metadata = metadata
        self.entries = entries
    }

    private static func parseEntry(
        _ name: String, _ value: Any, dataLength: Int, fail: (String) -> TesseraError
    ) throws -> Entry {
        guard let fields = value as? [String: Any] else { throw fail("tensor \(name): entry is not an object") }
        guard let dtypeName = fields["dtype"] as? String else { throw fail("tensor \(name): no dtype") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw fail("tensor \(name): unsupported dtype \(dtypeName) (expected F32, F16, BF16, I32 or I64)")
        }
        guard let shapeValues = fields["shape"] as? [Any], let shape = integers(shapeValues) else {
            throw fail("tensor \(name): shape is not a list of non-negative integers")
        }
        guard let offsetValues = fields["data_offsets"] as? [Any], let offsets = integers(offsetValues), offsets.count == 2 else {
            throw fail("tensor \(name): data_offsets is not two non-negative integers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end, end <= dataLength else {
            throw fail("tensor \(name): data_offsets [\(begin), \(end)) outside the \(dataLength)-byte data section")
        }
        var elements = 1
        for dimension in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw fail("tensor \(name): shape \(shape) overflows") }
            elements = product
        }
        let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, byteCount == end - begin else {
            throw fail("tensor \(name): shape \(shape) of \(dtypeName) needs \(elements) × \(dtype.byteSize) bytes, data_offsets give \(end - begin)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        for value in values {
            guard let integer = value as? Int, integer >= 0 else { return nil }
            result.append(integer)
        }
        return result
    }

    public func entry(_ name: String) throws -> Entry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw TesseraError("tensor \(name) is missing", path: path)
        }
        return entry
    }

    /// A float tensor's values converted to Float, checking the shape when one is given.
    public func floats(_ name: String, shape: [Int]? = nil) throws -> [Float] {
        let entry = try entry(name)
        guard entry.dtype.isFloat else { throw TesseraError("tensor \(name) is \(entry.dtype.rawValue), not a float type", path: path) }
        if let shape, shape != entry.shape {
            throw TesseraError("tensor \(name) has shape \(entry.shape), expected \(shape)", path: path)
        }
        return bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + entry.begin
            return (0..<entry.elementCount).map { i in
                switch entry.dtype {
                case .f32: Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case .f16: Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                case .bf16: Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                case .i32, .i64: 0
                }
            }
        }
    }

    /// Copies a float tensor into `tensor`, whose shape must match.
    public func read(_ name: String, into tensor: Tensor) throws {
        let values = try floats(name, shape: tensor.shape)
        values.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: tensor.count) }
    }

    /// An integer tensor's values.
    public func integers(_ name: String) throws -> [Int64] {
        let entry = try entry(name)
        return try bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + entry.begin
            switch entry.dtype {
            case .i64: return (0..<entry.elementCount).map { Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
            case .i32: return (0..<entry.elementCount).map { Int64(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            default: throw TesseraError("tensor \(name) is \(entry.dtype.rawValue), not an integer type", path: path)
            }
        }
    }
}

/// Collects tensors and writes them as one safetensors file, atomically.
public struct SafetensorsWriter {
    public var metadata: [String: String] = [:]
    private var items: [(name: String, dtype: DType, shape: [Int], bytes: Data)] = []

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    /// Adds float values, stored as `dtype` (F32, F16 or BF16; halves round to nearest even).
    public mutating func add(_ name: String, values: UnsafeBufferPointer<Float>, shape: [Int], as dtype: DType = .f32) {
        precondition(dtype.isFloat, "safetensors: \(dtype) is not a float type")
        precondition(shape.reduce(1, *) == values.count, "safetensors: \(values.count) values for shape \(shape)")
        precondition(name != "__metadata__" && !items.contains { $0.name == name }, "safetensors: tensor \(name) added twice")
        var data = Data(capacity: values.count * dtype.byteSize)
        for v in values {
            switch dtype {
            case .f32: withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) }
            case .f16: withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { data.append(contentsOf: $0) }
            case .bf16: withUnsafeBytes(of: bfloat16Bits(v).littleEndian) { data.append(contentsOf: $0) }
            case .i32, .i64: break
            }
        }
        items.append((name, dtype, shape, data))
    }

    public mutating func add(_ name: String, tensor: Tensor, as dtype: DType = .f32) {
        add(name, values: UnsafeBufferPointer(start: tensor.data, count: tensor.count), shape: tensor.shape, as: dtype)
    }

    public mutating func add(_ name: String, integers: [Int64], shape: [Int]? = nil) {
        precondition(name != "__metadata__" && !items.contains { $0.name == name }, "safetensors: tensor \(name) added twice")
        var data = Data(capacity: integers.count * 8)
        for v in integers { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        items.append((name, .i64, shape ?? [integers.count], data))
    }

    /// The file's bytes: the header (padded with spaces to a multiple of 8), then the data.
    public func serialized() -> Data {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for item in items {
            let shape = item.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(item.name)):{\"dtype\":\"\(item.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + item.bytes.count)]}")
            offset += item.bytes.count
        }
        var header = Data("{\(fields.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var file = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(header)
        for item in items { file.append(item.bytes) }
        return file
    }

    public func write(to path: String) throws {
        try AtomicFile.write(serialized(), to: path)
    }
}

/// bfloat16 bits of `value`, rounded to nearest even; NaN stays a quiet NaN.
func bfloat16Bits(_ value: Float) -> UInt16 {
    if value.isNaN { return 0x7FC0 }
    let bits = value.bitPattern
    return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// A JSON string literal for `text` (quotes, backslashes and control characters escaped).
public func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
