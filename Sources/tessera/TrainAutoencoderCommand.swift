// `tessera train autoencoder`: trains the image tokenizer on a dataset folder, with a progress
// line, periodic atomic checkpoints, held-out figures, exact resume, and a clean save on Ctrl-C.
// The model directory receives autoencoder.safetensors (f16) and model.json.
import ArgumentParser
import Foundation
import TesseraData
import TesseraModels
import TesseraTensor

struct AutoencoderModelOptions: ParsableArguments {
    @Option(name: .customLong("image-size"), help: "Picture side in pixels.")
    var imageSize = 64
    @Option(help: "Channels per level, full resolution first; each further level halves the grid.")
    var channels = "32,64,64"
    @Option(name: .customLong("encoder-blocks"), help: "Residual blocks per level in the encoder.")
    var encoderBlocks = "0,1,1"
    @Option(name: .customLong("decoder-blocks"), help: "Residual blocks per level in the decoder (default 0,1,2).")
    var decoderBlocks: String?
    @Option(name: .customLong("decoder-channels"), help: "The decoder's channels per level when they differ from --channels.")
    var decoderChannels: String?
    @Option(name: .customLong("decoder-output"), help: "The decoder's last layer: rgb (the picture's channels) or alpha (a foreground and a background colour mixed by one coverage map). (default: rgb)")
    var decoderOutput: DecoderOutput?
    @Option(help: "Feature norm in the conv blocks: group (group norm over the whole picture) or position (layer norm over each pixel's channels, so a code depends only on its receptive field). (default: group)")
    var norm: ConvNorm?
    @Option(help: "Quantizer: vq (EMA, l2-normalised codes), gumbel (DALL-E's dVAE) or fsq (finite scalar quantization).")
    var quantizer: QuantizerKind = .vq
    @Option(name: .customLong("codebook-size"), help: "K, the number of codes.")
    var codebookSize = 512
    @Option(name: .customLong("code-dimension"), help: "D, the dimension of a code.")
    var codeDimension = 16
    @Option(help: "fsq: levels per code dimension; they set D (their count) and K (their product), overriding --code-dimension and --codebook-size. (default: 8,5,5,5)")
    var levels: String?

    /// A new model's config from the flags.
    func config() throws -> AutoencoderConfig {
        guard levels == nil || quantizer == .fsq else { throw ValidationError("--levels belongs to --quantizer fsq") }
        var config = AutoencoderConfig(
            imageSize: imageSize, channels: try counts(channels, "channels"),
            encoderBlocks: try counts(encoderBlocks, "encoder-blocks"),
            decoderBlocks: try counts(decoderBlocks ?? "0,1,2", "decoder-blocks"),
            quantizer: quantizer, codebookSize: codebookSize, codeDimension: codeDimension,
            decoderChannels: try decoderChannels.map { try counts($0, "decoder-channels") },
            decoderOutput: decoderOutput == .rgb ? nil : decoderOutput, norm: norm == .group ? nil : norm)
        if quantizer == .fsq { config = config.withLevels(try counts(levels ?? "8,5,5,5", "levels")) }
        return try checked(config)
    }

    /// A trained model's config with the decoder reshaped by --decoder-channels / --decoder-blocks /
    /// --decoder-output, or nil when none is given.
    func reshapedDecoder(of trained: AutoencoderConfig) throws -> AutoencoderConfig? {
        guard decoderChannels != nil || decoderBlocks != nil || decoderOutput != nil else { return nil }
        var config = trained
        if let decoderChannels { config.decoderChannels = try counts(decoderChannels, "decoder-channels") }
        if let decoderBlocks { config.decoderBlocks = try counts(decoderBlocks, "decoder-blocks") }
        if config.decoderChannels == config.channels { config.decoderChannels = nil }
        if let decoderOutput { config.decoderOutput = decoderOutput == .rgb ? nil : decoderOutput }
        return try checked(config)
    }

    private func counts(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--\(flag) takes comma-separated whole numbers, e.g. 32,64,64")
        }
        return values.map { $0! }
    }

    private func checked(_ config: AutoencoderConfig) throws -> AutoencoderConfig {
        do { try config.validate() } catch let error as TesseraError { throw ValidationError(error.problem) }
        return config
    }
}

extension QuantizerKind: ExpressibleByArgument {}
extension DecoderOutput: ExpressibleByArgument {}
extension ConvNorm: ExpressibleByArgument {}

struct TrainAutoencoder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoencoder",
        abstract: "Train the discrete autoencoder (image tokenizer) of a model.")

    @Option(help: "Dataset folder of NAME.png + NAME.txt pairs.")
    var data: String
    @Option(name: .customLong("model-dir"), help: "Model folder: receives autoencoder.safetensors and model.json.")
    var modelDirectory: String
    @Option(help: "Held-out dataset folder for PSNR (and the Shapes checker on Shapes data).")
    var validation: String?
    @Option(name: .customLong("validation-count"), help: "Held-out pictures scored (the first N by name).")
    var validationCount = 500
    @OptionGroup var model: AutoencoderModelOptions
    @Option(help: "Optimiser updates in all (default 6000). With --resume, a larger count extends the run; the cosine schedule stretches to the new end.")
    var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Pictures per update.")
    var batchSize = 32
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate (warm-up, then cosine to 1/20 of it).")
    var learningRate: Float = 1e-3
    @Option(name: .customLong("adversarial-weight"), help: "Weight of the patch discriminator's loss; 0 leaves it out.")
    var adversarialWeight: Float = 0
    @Option(name: .customLong("adversarial-start"), help: "Step from which the discriminator trains.")
    var adversarialStart = 2000
    @Option(name: .customLong("edge-weight"), help: "How many times the squared error of an edge pixel (one whose colour differs from a 4-neighbour's) counts in the reconstruction loss; 1 is plain MSE.")
    var edgeWeight: Float = 1
    @Flag(help: "Flip training pictures horizontally at random.")
    var flip = false
    @Option(help: "Seed of initialisation, data order and restarts.")
    var seed: UInt64 = 1
    @Option(name: .customLong("checkpoint-every"), help: "Steps between checkpoints.")
    var checkpointEvery = 250
    @Option(name: .customLong("validate-every"), help: "Steps between held-out figures.")
    var validateEvery = 1000
    @Flag(name: .customLong("fine-tune-decoder"),
          help: "Train only the decoder of the model folder's trained autoencoder. Its config is kept, except that --decoder-blocks / --decoder-channels / --decoder-output, when given, reshape the decoder (with the same channels it starts as the old one, added blocks as the identity and a new kind of output layer afresh; other channels start afresh); other model flags are ignored. Tokens stay the same, so a prior trained on them stays valid.")
    var fineTuneDecoder = false
    @Flag(help: "Continue from the model folder's checkpoint (config and options come from it); with --fine-tune-decoder, from the decoder fine-tuning's.")
    var resume = false

    func validate() throws {
        guard (steps ?? 1) > 0, batchSize > 0, batchSize <= 1024, checkpointEvery > 0, validateEvery > 0, validationCount > 0 else {
            throw ValidationError("--steps, --batch-size (≤ 1024), --checkpoint-every, --validate-every and --validation-count must be positive")
        }
        guard learningRate > 0, adversarialWeight >= 0, edgeWeight >= 1 else {
            throw ValidationError("--learning-rate must be > 0, --adversarial-weight ≥ 0, --edge-weight ≥ 1")
        }
    }

    func run() throws {
        try makeOutputDirectory(modelDirectory)
        let trainingFolder = (modelDirectory as NSString).appendingPathComponent("training")
        let checkpointPath = (trainingFolder as NSString).appendingPathComponent(
            fineTuneDecoder ? "decoder-checkpoint.safetensors" : "autoencoder-checkpoint.safetensors")
        var trained = fineTuneDecoder && !resume ? try Autoencoder.load(modelDirectory: modelDirectory).0 : nil
        if let old = trained, let reshaped = try model.reshapedDecoder(of: old.config) {
            trained = old.withNewDecoder(reshaped, seed: seed)
        }
        var (config, options) = (try trained?.config ?? model.config(), AutoencoderTrainingOptions())
        options.steps = steps ?? 6000
        options.batchSize = batchSize
        options.learningRate = learningRate
        options.adversarialWeight = adversarialWeight
        options.adversarialStart = adversarialStart
        options.flip = flip
        options.edgeWeight = edgeWeight
        options.seed = seed
        options.decoderOnly = fineTuneDecoder
        if resume {
            (config, options) = try Self.settings(ofCheckpoint: checkpointPath)
            if let steps { options.steps = steps }
        }

        let dataset = try FolderDataset(directory: data)
        var loader = try BatchLoader(dataset: dataset, batchSize: options.batchSize, imageSize: config.imageSize, seed: options.seed)
        let held = try validation.map { try HeldOut(directory: $0, count: validationCount, imageSize: config.imageSize) }
        let autoencoder = trained ?? Autoencoder(config: config, seed: options.seed)
        let trainer = AutoencoderTrainer(model: autoencoder, options: options)
        if resume {
            let metadata = try trainer.restoreCheckpoint(from: checkpointPath)
            loader.restore(epoch: Int(metadata["loader.epoch"] ?? "") ?? 0, position: Int(metadata["loader.position"] ?? "") ?? 0)
            say("resumed at step \(trainer.step) of \(options.steps) from \(checkpointPath)")
        }
        say((options.decoderOnly ? "decoder fine-tuning of " : "") + "autoencoder: \(autoencoder.parameters.scalarCount) parameters, \(config.imageSize) px → \(config.gridSize)×\(config.gridSize) grid, "
              + "\(config.codebookSize) codes of \(config.codeDimension) (\(config.quantizer.rawValue)); \(dataset.items.count) training pictures")
        try makeOutputDirectory(trainingFolder)
        let stepsPerEpoch = max(1, dataset.items.count / options.batchSize)
        func saveAll() throws {
            try trainer.saveCheckpoint(to: checkpointPath, metadata: ["loader.epoch": String(loader.epoch), "loader.position": String(loader.position)])
            try autoencoder.save(to: (modelDirectory as NSString).appendingPathComponent(ModelManifest.autoencoderFile))
            try Self.writeManifest(directory: modelDirectory, config: config)
        }
        let finished = try trainingLoop(
            from: trainer.step, to: options.steps, batchSize: options.batchSize, checkpointEvery: checkpointEvery,
            validateEvery: validateEvery,
            step: {
                let report = trainer.train(pixels: loader.next().pixels)
                var parts = [("rec", report.reconstruction), ("q", report.quantizer)]
                if let adversarial = report.adversarial { parts.append(("adv", adversarial)) }
                if let disc = report.discriminator { parts.append(("disc", disc)) }
                return parts.map { "\($0.0) \(format($0.1))" }.joined(separator: " ")
                    + String(format: " ppl %.0f used %.0f%%", report.perplexity, 100 * trainer.codebookUsage(overSteps: stepsPerEpoch))
            },
            save: saveAll,
            validate: held.map { held in { "held-out " + held.describe(autoencoder.score(pictures: held.pictures, captions: held.captions)) } })
        guard finished else { return }
        let path = (modelDirectory as NSString).appendingPathComponent(ModelManifest.autoencoderFile)
        if let held {
            let (shipped, _) = try Autoencoder.load(modelDirectory: modelDirectory)
            say("as stored (f16): held-out " + held.describe(shipped.score(pictures: held.pictures, captions: held.captions)))
        }
        say("wrote \(path) and \(ModelManifest.fileName); checkpoint at \(checkpointPath)")
    }

    static func settings(ofCheckpoint path: String) throws -> (AutoencoderConfig, AutoencoderTrainingOptions) {
        let file = try SafetensorsFile(path: path)
        guard let configText = file.metadata["tessera.autoencoder.config"],
              let optionsText = file.metadata["tessera.autoencoder.training"],
              let options = try? JSONDecoder().decode(AutoencoderTrainingOptions.self, from: Data(optionsText.utf8)) else {
            throw TesseraError("not an autoencoder training checkpoint (config or options missing)", path: path)
        }
        return (try AutoencoderConfig.decode(json: configText, path: path), options)
    }

    /// Keeps what model.json says about other parts; the autoencoder defines the grid.
    static func writeManifest(directory: String, config: AutoencoderConfig) throws {
        var manifest = (try? ModelManifest.read(directory: directory))
            ?? ModelManifest(name: (directory as NSString).lastPathComponent, autoencoder: config)
        manifest.autoencoder = config
        manifest.imageSize = config.imageSize
        manifest.grid = [config.gridSize, config.gridSize]
        manifest.codebookSize = config.codebookSize
        manifest.parts["autoencoder"] = ModelManifest.autoencoderFile
        try manifest.write(directory: directory)
    }
}

/// The held-out pictures, loaded once.
struct HeldOut {
    let pictures: [[Float]]
    let captions: [String]
    /// Each item's name in the folder (without extension).
    let names: [String]

    init(directory: String, count: Int, imageSize: Int) throws {
        let dataset = try FolderDataset(directory: directory)
        let items = dataset.items.indices.prefix(count)
        pictures = try items.map { planarPixels(try dataset.image(at: $0).resized(width: imageSize, height: imageSize)) }
        captions = items.map { dataset.items[$0].captions[0] }
        names = items.map { dataset.items[$0].name }
    }

    func describe(_ score: ReconstructionScore) -> String {
        var text = String(format: "PSNR %.2f dB over %d pictures, codes used %.1f%%", score.psnr, score.images, 100 * score.codebookUsage)
        if let exact = score.shapesExact { text += String(format: ", Shapes checker exact %.1f%%", 100 * exact) }
        return text
    }
}

private func format(_ value: Float) -> String {
    abs(value) >= 0.1 ? String(format: "%.3f", value) : String(format: "%.4f", value)
}
