// `tessera train ar`: trains the autoregressive prior of a model whose autoencoder exists. The
// dataset's token grids are computed once with that autoencoder and cached beside the
// checkpoint; captions are encoded with the model's text tokenizer.
import ArgumentParser
import Foundation
import TesseraData
import TesseraModels
import TesseraTensor
import TesseraText

/// What training either prior takes on the command line.
struct PriorTrainingArguments: ParsableArguments {
    @Option(help: "Dataset folder of NAME.png + NAME.txt pairs.")
    var data: String
    @Option(name: .customLong("model-dir"), help: "Model folder with model.json and autoencoder.safetensors; receives the prior.")
    var modelDirectory: String
    @Option(help: "Text tokenizer folder (vocab.json + merges.txt); recorded in model.json. Default: the one model.json names.")
    var tokenizer: String?
    @Option(help: "Held-out dataset folder for the validation loss.")
    var validation: String?
    @Option(name: .customLong("text-length"), help: "Text positions; longer captions are cut (and counted).")
    var textLength = 32
    @Option(help: "Transformer width.")
    var width = 192
    @Option(help: "Transformer layers.")
    var layers = 6
    @Option(help: "Attention heads.")
    var heads = 6
    @Option(name: .customLong("caption-dropout"), help: "Rate of training on an empty caption (for guidance).")
    var captionDropout: Float = 0.1
    @Option(name: .customLong("first-caption-rate"),
            help: "Share of draws that take a picture's first caption (an emoji's name); the rest pick any of its captions (default 0.5). With --resume, another rate applies from the resumed step.")
    var firstCaptionRate: Float?
    @Option(help: "Optimiser updates in all (default 4000). With --resume, another count moves the end of the run; the cosine schedule stretches or shrinks to it.")
    var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Sequences per update.")
    var batchSize = 32
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate (warm-up, then cosine to 1/10 of it).")
    var learningRate: Float = 1e-3
    @Option(help: "Seed of initialisation and batches.")
    var seed: UInt64 = 1
    @Option(name: .customLong("checkpoint-every"), help: "Steps between checkpoints.")
    var checkpointEvery = 250
    @Option(name: .customLong("validate-every"), help: "Steps between validation losses.")
    var validateEvery = 500
    @Flag(help: "Continue from the model folder's checkpoint of this prior.")
    var resume = false

    func validate() throws {
        guard (steps ?? 1) > 0, (1...1024).contains(batchSize), (0...1).contains(firstCaptionRate ?? 0), checkpointEvery > 0, validateEvery > 0, learningRate > 0 else {
            throw ValidationError("--steps, --batch-size (≤ 1024), --checkpoint-every, --validate-every and --learning-rate must be positive, --first-caption-rate in [0, 1]")
        }
        guard (0...1).contains(captionDropout) else { throw ValidationError("--caption-dropout must be in [0, 1]") }
    }

    var options: PriorTrainingOptions {
        var options = PriorTrainingOptions()
        options.steps = steps ?? 4000
        options.batchSize = batchSize
        options.learningRate = learningRate
        options.seed = seed
        if let firstCaptionRate { options.firstCaptionRate = firstCaptionRate }
        return options
    }

    /// The prior's config and options saved in its checkpoint; --steps, when given, moves the end,
    /// and --first-caption-rate, when given, replaces the saved rate.
    func savedSettings<Config: Decodable>(_ type: Config.Type, part: String, checkpoint: String) throws -> (Config, PriorTrainingOptions) {
        var (config, options) = try savedTrainingSettings(type, part: part, checkpoint: checkpoint, steps: steps)
        if let firstCaptionRate { options.firstCaptionRate = firstCaptionRate }
        return (config, options)
    }

    /// Everything a prior's training reads before its first step.
    struct Setup {
        let autoencoder: Autoencoder
        let recordedTokenizer: String
        let textVocabularySize: Int
        let trainingFolder: String
        let examples: [TokenizedExample]
        let held: [TokenizedExample]?
        /// How the trained prior should read prompts, from the training captions.
        let promptReading: PromptReading?
    }

    func setup(textLength: Int) throws -> Setup {
        let (autoencoder, manifest) = try Autoencoder.load(modelDirectory: modelDirectory)
        let (bpe, recorded) = try priorTokenizer(tokenizer, modelDirectory: modelDirectory, manifest: manifest)
        let trainingFolder = (modelDirectory as NSString).appendingPathComponent("training")
        try makeOutputDirectory(trainingFolder)
        let examples = try tokenizedExamples(data, autoencoder: autoencoder, bpe: bpe, textLength: textLength, cacheFolder: trainingFolder)
        let held = try validation.map {
            try tokenizedExamples($0, autoencoder: autoencoder, bpe: bpe, textLength: textLength, cacheFolder: trainingFolder)
        }
        let captions = examples.lazy.flatMap(\.captions).map { bpe.decode($0.map(Int.init)) }
        return Setup(autoencoder: autoencoder, recordedTokenizer: recorded, textVocabularySize: bpe.vocabularySize,
                     trainingFolder: trainingFolder, examples: examples, held: held,
                     promptReading: PromptReading(captions: captions))
    }

    /// Records a trained prior in model.json: its config, its file, the tokenizer, and how
    /// prompts are read (measured on the training captions of `setup`).
    func recordPart(_ part: String, file: String, setup: Setup, update: (inout ModelManifest) -> Void) throws {
        var manifest = try ModelManifest.read(directory: modelDirectory)
        update(&manifest)
        manifest.tokenizer = setup.recordedTokenizer
        manifest.prompts = setup.promptReading
        manifest.parts[part] = file
        try manifest.write(directory: modelDirectory)
    }
}

struct TrainAR: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ar",
        abstract: "Train the autoregressive prior of a model (its autoencoder must exist).")

    @OptionGroup var prior: PriorTrainingArguments
    @Option(name: .customLong("text-loss-weight"), help: "Share of the loss on text tokens (DALL-E: 1/8).")
    var textLossWeight: Float = 0.125

    func run() throws {
        let a = prior
        let checkpointPath = (a.modelDirectory as NSString).appendingPathComponent("training/ar-checkpoint.safetensors")
        var options = a.options, textLength = a.textLength
        var saved: ARPriorConfig?
        if a.resume {
            (saved, options) = try a.savedSettings(ARPriorConfig.self, part: "ar", checkpoint: checkpointPath)
            textLength = saved!.textLength
        }
        let setup = try a.setup(textLength: textLength)
        let config = saved ?? ARPriorConfig(
            textLength: a.textLength, textVocabularySize: setup.textVocabularySize,
            gridHeight: setup.autoencoder.config.gridSize, gridWidth: setup.autoencoder.config.gridSize,
            codebookSize: setup.autoencoder.config.codebookSize, width: a.width, layers: a.layers, numHeads: a.heads,
            textLossWeight: textLossWeight, captionDropout: a.captionDropout)
        try config.validate()

        let model = ARPrior(config: config, seed: options.seed)
        let trainer = ARTrainer(prior: model, options: options)
        if a.resume {
            _ = try trainer.restoreCheckpoint(from: checkpointPath)
            guard trainer.step < options.steps else {
                throw TesseraError("the checkpoint is at step \(trainer.step) already; give a larger --steps to train on", path: checkpointPath)
            }
            say("resumed at step \(trainer.step) of \(options.steps) from \(checkpointPath)")
        }
        say("AR prior: \(model.parameters.scalarCount) parameters, \(config.layers) layers of width \(config.width), "
            + "\(config.textLength) text + \(config.imageLength) image positions; \(setup.examples.count) training pictures")
        let path = (a.modelDirectory as NSString).appendingPathComponent(ModelManifest.arFile)
        let finished = try trainingLoop(
            from: trainer.step, to: options.steps, batchSize: options.batchSize, checkpointEvery: a.checkpointEvery,
            validateEvery: a.validateEvery,
            step: {
                let loss = trainer.train(setup.examples)
                return String(format: "text %.3f image %.3f", loss.text, loss.image)
            },
            save: {
                try trainer.saveCheckpoint(to: checkpointPath, metadata: [:])
                try model.save(to: path)
                try a.recordPart("ar", file: ModelManifest.arFile, setup: setup) { $0.ar = config }
            },
            validate: setup.held.map { held in
                { String(format: "validation image loss %.4f nats per token", trainer.validationLoss(held)) }
            })
        if finished { say("wrote \(path) and model.json") }
    }
}

/// A pair trainer's config and options saved in its checkpoint (metadata tessera.PART.config and
/// tessera.PART.training); `steps`, when given, moves the end of the run.
func savedTrainingSettings<Config: Decodable>(_ type: Config.Type, part: String, checkpoint: String,
                                              steps: Int?) throws -> (Config, PriorTrainingOptions) {
    let file = try SafetensorsFile(path: checkpoint)
    guard let c = file.metadata["tessera.\(part).config"], let o = file.metadata["tessera.\(part).training"],
          let config = try? JSONDecoder().decode(Config.self, from: Data(c.utf8)),
          var options = try? JSONDecoder().decode(PriorTrainingOptions.self, from: Data(o.utf8)) else {
        throw TesseraError("not a \(part) training checkpoint (config or options missing)", path: checkpoint)
    }
    if let steps { options.steps = steps }
    return (config, options)
}

/// The text tokenizer a prior trains with: `option`'s folder (recorded relative to the model
/// directory) or the one model.json names.
func priorTokenizer(_ option: String?, modelDirectory: String, manifest: ModelManifest) throws -> (BPETokenizer, recorded: String) {
    if let option { return (try BPETokenizer(directory: option), relativePath(from: modelDirectory, to: option)) }
    guard let named = manifest.tokenizer, let folder = manifest.tokenizerDirectory(in: modelDirectory) else {
        throw TesseraError("model.json names no text tokenizer: pass --tokenizer DIR (vocab.json + merges.txt)", path: modelDirectory)
    }
    return (try BPETokenizer(directory: folder), named)
}

/// Every picture of a dataset folder as (captions' BPE ids, token grid, foreground positions,
/// background colour), the grids computed with the autoencoder once and cached with the rest in
/// `cacheFolder` under a key of the dataset's names and the autoencoder's weights.
func tokenizedExamples(_ directory: String, autoencoder: Autoencoder, bpe: BPETokenizer, textLength: Int,
                       cacheFolder: String) throws -> [TokenizedExample] {
    let dataset = try FolderDataset(directory: directory)
    var key = FNV1a()
    for item in dataset.items { key.add(item.name) }
    for entry in autoencoder.parameters.entries.prefix(4) { key.add(entry.tensor.values.prefix(64).map(\.bitPattern).description) }
    let cachePath = (cacheFolder as NSString).appendingPathComponent("ar-tokens-\(String(key.value, radix: 16)).safetensors")
    let (n, grid, size) = (autoencoder.config.gridSize * autoencoder.config.gridSize, autoencoder.config.gridSize,
                           autoencoder.config.imageSize)
    let cached = try? SafetensorsFile(path: cachePath)
    func stored(_ name: String) -> [Int64] {
        guard let cached, let values = try? cached.integers(name) else { return [] }
        return values
    }
    var grids = stored("grids").map { Int32($0) }, foreground = stored("foreground").map { $0 != 0 }
    var background = stored("background").map { Int32($0) }
    if grids.count != dataset.items.count * n || foreground.count != grids.count || background.count != dataset.items.count {
        // Caches written before the foreground masks or background colours keep their grids;
        // the pictures are read again.
        let tokenize = grids.count != dataset.items.count * n
        if tokenize { grids = [] }
        foreground = []
        background = []
        let chunk = 64
        for first in stride(from: 0, to: dataset.items.count, by: chunk) {
            let range = first..<min(dataset.items.count, first + chunk)
            let pictures = try range.map { planarPixels(try dataset.image(at: $0).resized(width: size, height: size)) }
            foreground += pictures.flatMap { foregroundPositions(planar: $0, size: size, grid: grid) }
            background += pictures.map { backgroundKey(backgroundColour(planar: $0, size: size)) }
            if tokenize { grids += autoencoder.tokens(Tensor(shape: [range.count, 3, size, size], values: pictures.flatMap { $0 })) }
            if isatty(2) == 1 {
                FileHandle.standardError.write(Data("\rreading \(directory): \(range.upperBound)/\(dataset.items.count)".utf8))
            }
        }
        if isatty(2) == 1 { FileHandle.standardError.write(Data("\n".utf8)) }
        say("\(tokenize ? "tokenized" : "found the foreground and background of") the \(dataset.items.count) pictures of \(directory) (cached in \(cachePath))")
        var writer = SafetensorsWriter(metadata: ["dataset": directory])
        writer.add("grids", integers: grids.map { Int64($0) })
        writer.add("foreground", integers: foreground.map { $0 ? Int64(1) : 0 })
        writer.add("background", integers: background.map { Int64($0) })
        try writer.write(to: cachePath)
    }
    var cut = 0
    let examples = dataset.items.enumerated().map { index, item in
        TokenizedExample(captions: item.captions.map { caption in
            let ids = bpe.encode(caption)
            if ids.count > textLength { cut += 1 }
            return ids.prefix(textLength).map { Int32($0) }
        }, grid: Array(grids[index * n..<(index + 1) * n]), foreground: Array(foreground[index * n..<(index + 1) * n]),
           background: background[index])
    }
    if cut > 0 { say("warning: \(cut) captions in \(directory) are longer than \(textLength) tokens and were cut") }
    return examples
}

/// FNV-1a over strings, for cache keys.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ text: String) {
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
        value = (value ^ 0xff) &* 0x100_0000_01b3
    }
}

/// `target` relative to `base` when both are relative to the same place, else absolute.
func relativePath(from base: String, to target: String) -> String {
    let baseParts = URL(fileURLWithPath: base).standardizedFileURL.pathComponents
    let targetParts = URL(fileURLWithPath: target).standardizedFileURL.pathComponents
    var common = 0
    while common < min(baseParts.count, targetParts.count) && baseParts[common] == targetParts[common] { common += 1 }
    let ups = [String](repeating: "..", count: baseParts.count - common)
    return (ups + targetParts[common...]).joined(separator: "/")
}
