// A model directory (DESIGN.md): model.json names the model, its picture and grid sizes, its
// text tokenizer and the parts present; each part is one safetensors file that also carries
// its config in `__metadata__`. Weights are stored as f16 and computed in f32.
import Foundation
import TesseraTensor
import TesseraText

public struct ModelManifest: Codable, Equatable, Sendable {
    public var kind = "tessera-model"
    public var version = 1
    public var name: String
    public var imageSize: Int
    /// [h, w] of the token grid.
    public var grid: [Int]
    public var codebookSize: Int
    /// The text tokenizer's folder, relative to the model directory (or absolute), once a
    /// prior needs one.
    public var tokenizer: String?
    /// Part name → file name within the directory ("autoencoder" → "autoencoder.safetensors").
    public var parts: [String: String]
    public var autoencoder: AutoencoderConfig?
    public var ar: ARPriorConfig?
    public var diffusion: DiffusionPriorConfig?
    public var scorer: ScorerConfig?
    /// How prompts are read, measured on the priors' training captions (nil: as they are).
    public var prompts: PromptReading?

    public init(name: String, autoencoder: AutoencoderConfig, tokenizer: String? = nil) {
        self.name = name
        imageSize = autoencoder.imageSize
        grid = [autoencoder.gridSize, autoencoder.gridSize]
        codebookSize = autoencoder.codebookSize
        self.tokenizer = tokenizer
        parts = ["autoencoder": ModelManifest.autoencoderFile]
        self.autoencoder = autoencoder
    }

    /// The tokenizer's folder as a path to open, for a manifest read from `directory`.
    public func tokenizerDirectory(in directory: String) -> String? {
        guard let tokenizer else { return nil }
        return tokenizer.hasPrefix("/") ? tokenizer : (directory as NSString).appendingPathComponent(tokenizer)
    }

    public static let fileName = "model.json"
    public static let autoencoderFile = "autoencoder.safetensors"
    public static let arFile = "ar.safetensors"
    public static let diffusionFile = "diffusion.safetensors"
    public static let scorerFile = "scorer.safetensors"

    public static func read(directory: String) throws -> ModelManifest {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TesseraError("no \(fileName) here: not a Tessera model directory", path: path)
        }
        guard data.count <= 1 << 20 else { throw TesseraError("model.json is larger than 1 MiB", path: path) }
        let manifest: ModelManifest
        do {
            manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
        } catch {
            throw TesseraError("not a valid model.json (\(describe(error)))", path: path)
        }
        guard manifest.kind == "tessera-model", manifest.version == 1 else {
            throw TesseraError("kind \(manifest.kind) version \(manifest.version) is not a Tessera model v1", path: path)
        }
        try manifest.autoencoder?.validate(path: path)
        try manifest.ar?.validate(path: path)
        try manifest.diffusion?.validate(path: path)
        try manifest.scorer?.validate(path: path)
        return manifest
    }

    public func write(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self)
        try AtomicFile.write(data + Data("\n".utf8), to: (directory as NSString).appendingPathComponent(ModelManifest.fileName))
    }
}

/// A short description of a decoding error: which field, what was wrong.
func describe(_ error: Error) -> String {
    guard let decoding = error as? DecodingError else { return "\(error)" }
    func pathText(_ path: [CodingKey]) -> String {
        path.isEmpty ? "top level" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
    switch decoding {
    case .keyNotFound(let key, let context): return "missing field \(pathText(context.codingPath + [key]))"
    case .typeMismatch(_, let context), .valueNotFound(_, let context):
        return "wrong type at \(pathText(context.codingPath))"
    case .dataCorrupted(let context): return "malformed JSON at \(pathText(context.codingPath))"
    @unknown default: return "\(error)"
    }
}

/// Compact JSON with sorted keys, the form configs take in metadata and comparisons.
func jsonText<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
}

/// Copies each named tensor of `file` into its target, after checking them all (shape, dtype,
/// finite values), so a bad file changes nothing.
func fill(_ targets: [(name: String, tensor: Tensor)], from file: SafetensorsFile) throws {
    let values = try targets.map { name, tensor in try file.floats(name, shape: tensor.shape) }
    for ((name, _), v) in zip(targets, values) where !v.allSatisfy({ $0.isFinite }) {
        throw TesseraError("tensor \(name) holds NaN or infinity", path: file.path)
    }
    for ((_, tensor), v) in zip(targets, values) {
        v.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: tensor.count) }
    }
}

/// A part's config as its safetensors file and model.json carry it.
protocol PartConfig: Codable, Equatable {
    func validate(path: String?) throws
}

extension ARPriorConfig: PartConfig {}
extension DiffusionPriorConfig: PartConfig {}
extension ScorerConfig: PartConfig {}

/// Writes a part: its parameters as f16, `buffers` as f32, its config under `key`.
func savePart<Config: PartConfig>(_ config: Config, key: String, part: String, parameters: ParameterStore,
                                  buffers: [(name: String, tensor: Tensor)] = [], to path: String) throws {
    var writer = SafetensorsWriter(metadata: [key: jsonText(config), "tessera.part": part])
    for entry in parameters.entries { writer.add(entry.name, tensor: entry.tensor, as: .f16) }
    for (name, tensor) in buffers { writer.add(name, tensor: tensor) }
    try writer.write(to: path)
}

/// The validated config a part file carries under `key`; `label` names the part in errors.
func partConfig<Config: PartConfig>(_ type: Config.Type, key: String, label: String, in file: SafetensorsFile) throws -> Config {
    guard let json = file.metadata[key] else {
        throw TesseraError("no \(label) config in the metadata: this is not the \(label)'s file", path: file.path)
    }
    let config: Config
    do { config = try JSONDecoder().decode(Config.self, from: Data(json.utf8)) } catch {
        throw TesseraError("\(label) config is not valid (\(describe(error)))", path: file.path)
    }
    try config.validate(path: file.path)
    return config
}

extension ModelManifest {
    /// The file of `part` in a model directory, or an error that says how to make it.
    func partPath(_ part: String, label: String, directory: String) throws -> String {
        guard let file = parts[part] else {
            throw TesseraError("this model has no \(label); train one with `tessera train \(part) --data DIR --model-dir \(directory)`",
                               path: directory)
        }
        let path = (directory as NSString).appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: path) else {
            throw TesseraError("the \(label) part is missing; train one with `tessera train \(part)`", path: path)
        }
        return path
    }
}

extension Autoencoder {
    static let configKey = "tessera.autoencoder.config"

    /// Writes the inference weights (parameters and the codebook) as f16, with the config.
    public func save(to path: String) throws {
        var writer = SafetensorsWriter(metadata: [Autoencoder.configKey: config.json(), "tessera.part": "autoencoder"])
        for (name, tensor) in inferenceTensors { writer.add(name, tensor: tensor, as: .f16) }
        try writer.write(to: path)
    }

    /// What drawing and tokenizing need: the parameters and the codebook, no training averages.
    var inferenceTensors: [(name: String, tensor: Tensor)] {
        namedTensors.filter { $0.name == "quantizer.codebook" || !$0.name.hasPrefix("quantizer.") || parameters[$0.name] != nil }
    }

    /// Loads an autoencoder file written by `save(to:)`; every tensor is checked first.
    public static func load(path: String) throws -> Autoencoder {
        let file = try SafetensorsFile(path: path)
        guard let json = file.metadata[configKey] else {
            throw TesseraError("no autoencoder config in the metadata: not an autoencoder file", path: path)
        }
        let config = try AutoencoderConfig.decode(json: json, path: path)
        let model = Autoencoder(config: config, seed: 0)
        try fill(model.inferenceTensors, from: file)
        return model
    }

    /// The autoencoder of a model directory, checked against its model.json.
    public static func load(modelDirectory directory: String) throws -> (Autoencoder, ModelManifest) {
        let manifest = try ModelManifest.read(directory: directory)
        let path = try manifest.partPath("autoencoder", label: "autoencoder", directory: directory)
        let model = try load(path: path)
        if let expected = manifest.autoencoder, expected != model.config {
            throw TesseraError("its config differs from the one in model.json", path: path)
        }
        return (model, manifest)
    }
}

extension ARPrior {
    static let configKey = "tessera.ar.config"

    /// Writes the weights as f16, with the config.
    public func save(to path: String) throws {
        try savePart(config, key: ARPrior.configKey, part: "ar", parameters: parameters, to: path)
    }

    public static func load(path: String) throws -> ARPrior {
        let file = try SafetensorsFile(path: path)
        let prior = ARPrior(config: try partConfig(ARPriorConfig.self, key: configKey, label: "AR prior", in: file), seed: 0)
        try fill(prior.parameters.entries.map { ($0.name, $0.tensor) }, from: file)
        return prior
    }

    /// The AR prior of a model directory, checked against its model.json.
    public static func load(modelDirectory directory: String, manifest: ModelManifest) throws -> ARPrior {
        let path = try manifest.partPath("ar", label: "AR prior", directory: directory)
        let prior = try load(path: path)
        if let expected = manifest.ar, expected != prior.config {
            throw TesseraError("its config differs from the one in model.json", path: path)
        }
        guard prior.config.gridHeight == manifest.grid.first, prior.config.gridWidth == manifest.grid.last,
              prior.config.codebookSize == manifest.codebookSize else {
            throw TesseraError("the AR prior was trained for another grid or codebook than this model's autoencoder", path: path)
        }
        return prior
    }
}

extension DiffusionPrior {
    static let configKey = "tessera.diffusion.config"

    /// Writes the weights as f16 and the latent statistics as f32, with the config.
    public func save(to path: String) throws {
        try savePart(config, key: DiffusionPrior.configKey, part: "diffusion", parameters: parameters, buffers: buffers, to: path)
    }

    public static func load(path: String) throws -> DiffusionPrior {
        let file = try SafetensorsFile(path: path)
        let config = try partConfig(DiffusionPriorConfig.self, key: configKey, label: "diffusion prior", in: file)
        let prior = DiffusionPrior(config: config, seed: 0)
        try fill(prior.parameters.entries.map { ($0.name, $0.tensor) } + prior.buffers, from: file)
        guard (0..<config.latentChannels).allSatisfy({ prior.latentStd.data[$0] > 0 }) else {
            throw TesseraError("diffusion.latent_std holds a value ≤ 0", path: path)
        }
        return prior
    }

    /// The diffusion prior of a model directory, checked against its model.json.
    public static func load(modelDirectory directory: String, manifest: ModelManifest) throws -> DiffusionPrior {
        let path = try manifest.partPath("diffusion", label: "diffusion prior", directory: directory)
        let prior = try load(path: path)
        if let expected = manifest.diffusion, expected != prior.config {
            throw TesseraError("its config differs from the one in model.json", path: path)
        }
        guard prior.config.gridHeight == manifest.grid.first, prior.config.gridWidth == manifest.grid.last,
              prior.config.codebookSize == manifest.codebookSize,
              prior.config.latentChannels == manifest.autoencoder?.codeDimension ?? prior.config.latentChannels else {
            throw TesseraError("the diffusion prior was trained for another grid or codebook than this model's autoencoder", path: path)
        }
        return prior
    }
}

extension Scorer {
    static let configKey = "tessera.scorer.config"

    /// Writes the weights as f16, with the config.
    public func save(to path: String) throws {
        try savePart(config, key: Scorer.configKey, part: "scorer", parameters: parameters, to: path)
    }

    public static func load(path: String) throws -> Scorer {
        let file = try SafetensorsFile(path: path)
        let scorer = Scorer(config: try partConfig(ScorerConfig.self, key: configKey, label: "scorer", in: file), seed: 0)
        try fill(scorer.parameters.entries.map { ($0.name, $0.tensor) }, from: file)
        return scorer
    }

    /// The scorer of a model directory, checked against its model.json.
    public static func load(modelDirectory directory: String, manifest: ModelManifest) throws -> Scorer {
        let path = try manifest.partPath("scorer", label: "scorer", directory: directory)
        let scorer = try load(path: path)
        if let expected = manifest.scorer, expected != scorer.config {
            throw TesseraError("its config differs from the one in model.json", path: path)
        }
        guard scorer.config.imageSize == manifest.imageSize else {
            throw TesseraError("the scorer reads \(scorer.config.imageSize) px pictures, this model draws \(manifest.imageSize) px", path: path)
        }
        return scorer
    }
}
