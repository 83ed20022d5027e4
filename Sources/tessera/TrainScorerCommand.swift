// `tessera train scorer`: trains the CLIP-style scorer of a model on a dataset's pairs. It needs
// the model's model.json (picture size, text tokenizer), not its autoencoder: the scorer reads
// pixels.
import ArgumentParser
import Foundation
import TesseraData
import TesseraModels
import TesseraTensor
import TesseraText

struct TrainScorer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scorer",
        abstract: "Train the scorer (a CLIP-style text/picture model) that judges and reranks a model's pictures.")

    @Option(help: "Dataset folder of NAME.png + NAME.txt pairs.")
    var data: String
    @Option(name: .customLong("model-dir"), help: "Model folder with model.json; receives scorer.safetensors.")
    var modelDirectory: String
    @Option(help: "Text tokenizer folder (vocab.json + merges.txt). Default: the one model.json names.")
    var tokenizer: String?
    @Option(help: "Held-out dataset folder for the validation figures.")
    var validation: String?
    @Option(name: .customLong("text-length"), help: "Text positions; longer captions are cut (and counted).")
    var textLength = 32
    @Option(help: "Width of the text transformer.")
    var width = 128
    @Option(help: "Layers of the text transformer.")
    var layers = 3
    @Option(help: "Attention heads of the text transformer.")
    var heads = 4
    @Option(help: "Channels of the picture tower's convolutions, comma-separated (each after the first halves the picture).")
    var channels = "32,64,128,128,128"
    @Option(help: "Dimension of the shared feature space.")
    var embedding = 128
    @Option(name: .customLong("first-caption-rate"),
            help: "Share of draws that take a picture's first caption (an emoji's name); the rest pick any of its captions.")
    var firstCaptionRate: Float = 0.5
    @Option(help: "Optimiser updates in all (default 3000). With --resume, another count moves the end of the run.")
    var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Pairs per update; each caption is contrasted with every picture of the batch.")
    var batchSize = 128
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate (warm-up, then cosine to 1/10 of it).")
    var learningRate: Float = 5e-4
    @Option(help: "Seed of initialisation and batches.")
    var seed: UInt64 = 1
    @Option(name: .customLong("checkpoint-every"), help: "Steps between checkpoints.")
    var checkpointEvery = 250
    @Option(name: .customLong("validate-every"), help: "Steps between validation figures.")
    var validateEvery = 500
    @Flag(help: "Continue from the model folder's scorer checkpoint.")
    var resume = false

    func validate() throws {
        guard (steps ?? 1) > 0, (2...4096).contains(batchSize), checkpointEvery > 0, validateEvery > 0, learningRate > 0,
              (0...1).contains(firstCaptionRate) else {
            throw ValidationError("--steps, --checkpoint-every, --validate-every and --learning-rate must be positive, --batch-size 2…4,096, --first-caption-rate in [0, 1]")
        }
        guard parsedChannels != nil else { throw ValidationError("--channels must be comma-separated positive integers") }
    }

    var parsedChannels: [Int]? {
        let parts = channels.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return parts.map { $0! }
    }

    func run() throws {
        let checkpointPath = (modelDirectory as NSString).appendingPathComponent("training/scorer-checkpoint.safetensors")
        let manifest = try ModelManifest.read(directory: modelDirectory)
        let (bpe, recorded) = try priorTokenizer(tokenizer, modelDirectory: modelDirectory, manifest: manifest)
        var options = PriorTrainingOptions()
        options.steps = steps ?? 3000
        options.batchSize = batchSize
        options.learningRate = learningRate
        options.seed = seed
        options.firstCaptionRate = firstCaptionRate
        var config = ScorerConfig(textLength: textLength, textVocabularySize: bpe.vocabularySize, imageSize: manifest.imageSize,
                                  textWidth: width, textLayers: layers, textHeads: heads, imageChannels: parsedChannels!,
                                  embedding: embedding)
        if resume {
            (config, options) = try savedTrainingSettings(ScorerConfig.self, part: "scorer", checkpoint: checkpointPath, steps: steps)
        }
        try config.validate()
        try makeOutputDirectory((modelDirectory as NSString).appendingPathComponent("training"))
        let examples = try scorerExamples(data, bpe: bpe, config: config)
        let held = try validation.map { try scorerExamples($0, bpe: bpe, config: config) }
        guard examples.count >= options.batchSize else {
            throw TesseraError("holds \(examples.count) pictures, fewer than a batch of \(options.batchSize)", path: data)
        }

        let scorer = Scorer(config: config, seed: options.seed)
        let trainer = ScorerTrainer(scorer: scorer, options: options)
        if resume {
            _ = try trainer.restoreCheckpoint(from: checkpointPath)
            guard trainer.step < options.steps else {
                throw TesseraError("the checkpoint is at step \(trainer.step) already; give a larger --steps to train on", path: checkpointPath)
            }
            say("resumed at step \(trainer.step) of \(options.steps) from \(checkpointPath)")
        }
        say("scorer: \(scorer.parameters.scalarCount) parameters (text: \(config.textLayers) layers of width \(config.textWidth); "
            + "pictures: convolutions \(config.imageChannels.map(String.init).joined(separator: ","))), "
            + "features of \(config.embedding); \(examples.count) training pictures")
        let path = (modelDirectory as NSString).appendingPathComponent(ModelManifest.scorerFile)
        let finished = try trainingLoop(
            from: trainer.step, to: options.steps, batchSize: options.batchSize, checkpointEvery: checkpointEvery,
            validateEvery: validateEvery,
            step: { String(format: "loss %.4f scale %.1f", trainer.train(examples), scorer.logitScale) },
            save: {
                try trainer.saveCheckpoint(to: checkpointPath, metadata: [:])
                try scorer.save(to: path)
                var manifest = try ModelManifest.read(directory: modelDirectory)
                manifest.scorer = config
                manifest.parts["scorer"] = ModelManifest.scorerFile
                if manifest.tokenizer == nil { manifest.tokenizer = recorded }
                try manifest.write(directory: modelDirectory)
            },
            validate: held.map { held in
                {
                    let figures = trainer.validation(held)
                    return String(format: "validation loss %.4f, own caption first in batches of %d: %.1f %%",
                                  figures.loss, options.batchSize, 100 * figures.accuracy)
                }
            })
        if finished { say("wrote \(path) and model.json") }
    }
}

/// Every picture of a dataset folder at the scorer's size, with its captions' BPE ids.
func scorerExamples(_ directory: String, bpe: BPETokenizer, config: ScorerConfig) throws -> [ScorerExample] {
    let dataset = try FolderDataset(directory: directory)
    var cut = 0
    let size = config.imageSize
    let examples = try dataset.items.indices.map { index in
        let planar = planarPixels(try dataset.image(at: index).resized(width: size, height: size))
        let captions = dataset.items[index].captions.map { caption in
            let ids = bpe.encode(caption)
            if ids.count > config.textLength { cut += 1 }
            return ids.prefix(config.textLength).map { Int32($0) }
        }
        return ScorerExample(captions: captions, pixels: planar.map { UInt8(min(255, max(0, (($0 + 1) * 127.5).rounded()))) })
    }
    if cut > 0 { say("warning: \(cut) captions in \(directory) are longer than \(config.textLength) tokens and were cut") }
    return examples
}
