// `tessera train diffusion`: trains the diffusion prior of a model whose autoencoder exists, on
// the same cached token grids as the AR prior; a grid's latent is its codes' vectors. The
// latent statistics are measured on the training set before the first step.
import ArgumentParser
import Foundation
import TesseraModels
import TesseraTensor

struct TrainDiffusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diffusion",
        abstract: "Train the diffusion prior of a model (its autoencoder must exist).")

    @OptionGroup var prior: PriorTrainingArguments
    @Option(name: .customLong("diffusion-steps"), help: "T, the noise levels of the cosine schedule.")
    var diffusionSteps = 1000
    @Option(name: .customLong("patch-size"), help: "p: each sequence position holds a p×p patch of the latent grid.")
    var patchSize = 1
    @Option(name: .customLong("timestep-shift"),
            help: "s > 1 draws training noise levels towards more noise (SD3's shift); 1 draws them uniformly (default 1; with --resume, the saved value unless given).")
    var timestepShift: Float?
    @Option(name: .customLong("ema-decay"),
            help: "d of the moving average of the weights that validation and the saved prior use; 0 keeps none (default 0.999; with --resume, the saved value unless given).")
    var emaDecay: Float?
    @Option(name: .customLong("object-weight"),
            help: "Weight in the loss of the latent positions on or next to anything besides the picture's background; 1 weighs all alike (default 1; with --resume, the saved value unless given).")
    var objectWeight: Float?
    @Flag(name: .customLong("self-condition"),
          help: "Self-conditioning: the denoiser also sees its previous prediction of the clean latent (half the training items, every sampling step after the first).")
    var selfCondition = false
    @Option(name: .customLong("text-layers"),
            help: "Transformer blocks that read the caption on its own before it joins the latent positions.")
    var textLayers = 0
    @Flag(name: .customLong("no-pooled-caption"),
          help: "Leave the caption's mean word embedding out of the blocks' noise-level conditioning: the caption reaches the latents only through attention.")
    var noPooledCaption = false
    @Flag(name: .customLong("caption-context"),
          help: "The caption's tokens are context only: the blocks update the latent positions and pass the caption's states on unchanged.")
    var captionContext = false
    @Flag(name: .customLong("cross-attention"),
          help: "The caption enters through cross-attention in every block (PixArt-α) instead of sharing the latents' sequence.")
    var crossAttention = false
    @Flag(name: .customLong("flat-caption"),
          help: "Add a caption vector that knows word order to the blocks' conditioning: the caption's word embeddings flattened in order and projected.")
    var flatCaption = false
    @Flag(name: .customLong("plain-background"),
          help: "Train on grids whose plain background holds one code per background colour and place (the training set's most frequent there), not the many the tokenizer spells it with.")
    var plainBackground = false
    @Flag(name: .customLong("cell-embedding"),
          help: "Give each latent position an embedding of its own cell beside its row's and column's, which alone are separable.")
    var cellEmbedding = false
    @Option(name: .customLong("token-loss"),
            help: "λ of an auxiliary cross-entropy: a second head names each cell's clean token from the same final states as v (0: none).")
    var tokenLoss: Float = 0

    func validate() throws {
        guard (1...100_000).contains(diffusionSteps) else { throw ValidationError("--diffusion-steps must be 1…100,000") }
        guard (0...64).contains(textLayers) else { throw ValidationError("--text-layers must be 0…64") }
        guard (1...8).contains(patchSize) else { throw ValidationError("--patch-size must be 1…8") }
        guard (timestepShift ?? 1) > 0, (timestepShift ?? 1) <= 100 else { throw ValidationError("--timestep-shift must be in (0, 100]") }
        guard (0..<1).contains(emaDecay ?? 0) else { throw ValidationError("--ema-decay must be in [0, 1)") }
        guard (0.01...1000).contains(objectWeight ?? 1) else { throw ValidationError("--object-weight must be in [0.01, 1000]") }
        guard (0...100).contains(tokenLoss) else { throw ValidationError("--token-loss must be in [0, 100]") }
    }

    func run() throws {
        let a = prior
        let checkpointPath = (a.modelDirectory as NSString).appendingPathComponent("training/diffusion-checkpoint.safetensors")
        var options = a.options, textLength = a.textLength
        options.timestepShift = timestepShift ?? 1
        options.weightAverageDecay = emaDecay ?? 0.999
        options.objectWeight = objectWeight ?? 1
        options.plainBackground = plainBackground
        var saved: DiffusionPriorConfig?
        if a.resume {
            (saved, options) = try a.savedSettings(DiffusionPriorConfig.self, part: "diffusion", checkpoint: checkpointPath)
            textLength = saved!.textLength
            if let timestepShift { options.timestepShift = timestepShift }
            if let emaDecay { options.weightAverageDecay = emaDecay }
            if let objectWeight { options.objectWeight = objectWeight }
            if plainBackground { options.plainBackground = true }
        }
        let setup = try a.setup(textLength: textLength)
        var (examples, held) = (setup.examples, setup.held)
        if options.plainBackground {
            let background = BackgroundCodes(setup.examples)
            examples = examples.map(background.plain)
            held = held?.map(background.plain)
            say("plain background: one code per place for each of \(background.codes.count) background colours")
        }
        let autoencoder = setup.autoencoder.config
        let config = saved ?? DiffusionPriorConfig(
            textLength: a.textLength, textVocabularySize: setup.textVocabularySize, gridHeight: autoencoder.gridSize,
            gridWidth: autoencoder.gridSize, codebookSize: autoencoder.codebookSize, latentChannels: autoencoder.codeDimension,
            width: a.width, layers: a.layers, numHeads: a.heads, captionDropout: a.captionDropout, diffusionSteps: diffusionSteps,
            patchSize: patchSize, selfCondition: selfCondition, textLayers: textLayers,
            pooledCaption: !noPooledCaption, captionContext: captionContext,
            crossAttention: crossAttention, flatCaption: flatCaption,
            cellEmbedding: cellEmbedding, tokenLossWeight: tokenLoss)
        try config.validate()

        let model = DiffusionPrior(config: config, seed: options.seed)
        let trainer = DiffusionTrainer(prior: model, codeVectors: setup.autoencoder.quantizer.codeVectors(), options: options)
        if a.resume {
            _ = try trainer.restoreCheckpoint(from: checkpointPath)
            guard trainer.step < options.steps else {
                throw TesseraError("the checkpoint is at step \(trainer.step) already; give a larger --steps to train on", path: checkpointPath)
            }
            say("resumed at step \(trainer.step) of \(options.steps) from \(checkpointPath)")
        } else {
            trainer.measureStatistics(examples)
        }
        say("diffusion prior: \(model.parameters.scalarCount) parameters, \(config.layers) layers of width \(config.width), "
            + "\(config.textLength) text + \(config.patchRows * config.patchColumns) latent positions "
            + "(\(config.patchSize)×\(config.patchSize) patches of \(config.latentChannels) channels), "
            + "T = \(config.diffusionSteps); \(examples.count) training pictures")
        let path = (a.modelDirectory as NSString).appendingPathComponent(ModelManifest.diffusionFile)
        let finished = try trainingLoop(
            from: trainer.step, to: options.steps, batchSize: options.batchSize, checkpointEvery: a.checkpointEvery,
            validateEvery: a.validateEvery,
            step: {
                let loss = trainer.train(examples)
                return String(format: "v error %.4f", loss.velocity)
                    + (config.tokenLossWeight > 0 ? String(format: ", token CE %.3f", loss.tokens) : "")
            },
            save: {
                try trainer.saveCheckpoint(to: checkpointPath, metadata: [:])
                try trainer.withAveragedWeights { try model.save(to: path) }
                try a.recordPart("diffusion", file: ModelManifest.diffusionFile, setup: setup) { $0.diffusion = config }
            },
            validate: held.map { held in {
                let (with, without) = (trainer.validationErrors(held), trainer.validationErrors(held, captions: false))
                func bands(_ errors: [Float]) -> String { errors.map { String(format: "%.3f", $0) }.joined(separator: " ") }
                return String(format: "validation v error %.4f (%.4f with the captions dropped); ", with.mean, without.mean)
                    + "by quarter of the noise levels, least noise first: \(bands(with.bands)) (\(bands(without.bands)))"
            } })
        if finished { say("wrote \(path) and model.json") }
    }
}
