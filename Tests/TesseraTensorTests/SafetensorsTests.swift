// safetensors round trips, and malformed files: each rejected with an error that names the
// file and the problem, never a trap.
import Foundation
import Testing
import TesseraTensor

/// A path named `name` in a fresh directory of its own; `removeTemporaryPath` takes the directory away.
func temporaryPath(_ name: String) -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-tests-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent(name).path
}

func removeTemporaryPath(_ path: String) {
    try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
}

/// A file from a header given as text and `dataLength` bytes of data.
func rawFile(header: String, dataLength: Int, declaredLength: UInt64? = nil) -> Data {
    let headerBytes = Data(header.utf8)
    var data = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { data.append(contentsOf: $0) }
    data.append(headerBytes)
    data.append(Data(repeating: 0, count: dataLength))
    return data
}

@Suite struct SafetensorsRoundTrip {
    @Test func floatTypesAndMetadataRoundTrip() throws {
        let values: [Float] = [0, 1, -2.5, 3.140625, 65504, 1e-3, -0.0, 1234.5]
        let tensor = Tensor(shape: [2, 4], values: values)
        var writer = SafetensorsWriter(metadata: ["config": "{\"d\": 256}", "note": "tab\there \"quoted\""])
        writer.add("layer.weight", tensor: tensor, as: .f32)
        writer.add("layer.half", tensor: tensor, as: .f16)
        writer.add("layer.brain", tensor: tensor, as: .bf16)
        writer.add("steps", integers: [7, -1, 1 << 40])
        let path = temporaryPath("roundtrip.safetensors")
        defer { removeTemporaryPath(path) }
        try writer.write(to: path)

        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == writer.metadata)
        #expect(try file.floats("layer.weight") == values)
        // F16 holds every value above exactly except 1e-3 and 1234.5 (rounded to nearest).
        let half = try file.floats("layer.half", shape: [2, 4])
        #expect(half == values.map { Float(Float16($0)) })
        let brain = try file.floats("layer.brain")
        for (b, v) in zip(brain, values) { #expect(abs(b - v) <= abs(v) / 128) }  // 8 bits of mantissa
        #expect(try file.integers("steps") == [7, -1, 1 << 40])
        #expect(file.entries.map(\.name) == ["layer.weight", "layer.half", "layer.brain", "steps"])
        // The header is padded to 8 bytes, as the reference writer does.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } % 8 == 0)
    }

    @Test func bfloat16RoundsToNearestEven() throws {
        // 1 + 2⁻⁸ is halfway between two bf16 values: it rounds to the even one, 1.
        // 1 + 3·2⁻⁸ rounds up to 1 + 2⁻⁶.
        var writer = SafetensorsWriter()
        let values: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, .nan]
        values.withUnsafeBufferPointer { writer.add("x", values: $0, shape: [3], as: .bf16) }
        let file = try SafetensorsFile(data: writer.serialized(), path: "memory")
        let read = try file.floats("x")
        #expect(read[0] == 1 && read[1] == 1 + 0x1p-6 && read[2].isNaN)
    }

    @Test func loadingChecksShapeAndNames() throws {
        var writer = SafetensorsWriter()
        writer.add("w", tensor: Tensor(shape: [2, 3]))
        let file = try SafetensorsFile(data: writer.serialized(), path: "model.safetensors")
        #expect(throws: TesseraError.self) { try file.read("w", into: Tensor(shape: [3, 2])) }
        do {
            _ = try file.floats("missing")
            Issue.record("a missing tensor was read")
        } catch let error as TesseraError {
            #expect(error.description == "model.safetensors: tensor missing is missing")
        }
    }
}

@Suite struct MalformedSafetensors {
    static let valid = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#

    /// Each case: a file and a phrase its error must contain.
    static let cases: [(String, Data, String)] = [
        ("empty", Data(), "shorter than the 8-byte header length"),
        ("truncated length", Data([1, 0, 0]), "shorter than the 8-byte header length"),
        ("header past the end", rawFile(header: valid, dataLength: 8, declaredLength: 4096), "runs past the end"),
        ("absurd header length", rawFile(header: valid, dataLength: 8, declaredLength: UInt64.max), "exceeds"),
        ("non-JSON header", rawFile(header: "{not json at all}", dataLength: 0), "not a JSON object"),
        ("JSON but not an object", rawFile(header: "[1, 2, 3]", dataLength: 0), "not a JSON object"),
        ("unknown dtype", rawFile(header: #"{"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#, dataLength: 8), "unsupported dtype Q7"),
        ("shape/size mismatch", rawFile(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, dataLength: 8), "needs 3 × 4 bytes"),
        ("offsets out of range", rawFile(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, dataLength: 4), "outside the 4-byte data section"),
        ("reversed offsets", rawFile(header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, dataLength: 8), "outside"),
        ("overlapping tensors", rawFile(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, dataLength: 12), "overlaps"),
        ("unindexed gap", rawFile(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataLength: 8), "unindexed bytes"),
        ("truncated data", rawFile(header: valid, dataLength: 5), "outside the 5-byte data section"),
        ("negative dimension", rawFile(header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, dataLength: 8), "shape is not a list"),
        ("overflowing shape", rawFile(header: #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, dataLength: 8), "overflows"),
        ("metadata not strings", rawFile(header: #"{"__metadata__":{"step":3}}"#, dataLength: 0), "is not a string"),
    ]

    @Test(arguments: 0..<cases.count)
    func rejectedWithAClearError(index: Int) {
        let (name, data, phrase) = Self.cases[index]
        let path = temporaryPath("bad-\(index).safetensors")
        defer { removeTemporaryPath(path) }
        #expect(FileManager.default.createFile(atPath: path, contents: data))
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("\(name): accepted")
        } catch let error as TesseraError {
            #expect(error.path == path, "\(name)")
            #expect(error.problem.contains(phrase), "\(name): \(error.problem)")
            #expect(!error.description.contains("\n"), "\(name): one line")
        } catch {
            Issue.record("\(name): unexpected error \(error)")
        }
    }

    @Test func missingFileIsNamed() {
        #expect(throws: TesseraError("no such file", path: "/nonexistent/x.safetensors")) {
            try SafetensorsFile(path: "/nonexistent/x.safetensors")
        }
    }
}
