// Training the AR prior on (caption, token grid) pairs: each step draws a batch of pairs and
// one caption of each with the trainer's generator, drops captions to empty at the configured
// rate, and takes one AdamW step. The generator is part of the checkpoint, so a resumed run
// draws the very same batches.
import Foundation
import TesseraKernels
import TesseraTensor

public struct ARTrainingOptions: Codable, Equatable, Sendable {
    public var steps = 4000
    public var batchSize = 32
    public var learningRate: Float = 1e-3
    public var warmupSteps = 200
    public var seed: UInt64 = 1

    public init() {}
}

/// One training example: a picture's token grid and the BPE ids of each of its captions.
public struct TokenizedExample: Sendable {
    public var captions: [[Int32]]
    public var grid: [Int32]

    public init(captions: [[Int32]], grid: [Int32]) {
        self.captions = captions
        self.grid = grid
    }
}

public final class ARTrainer {
    public let prior: ARPrior
    public let options: ARTrainingOptions
    let optimizer: AdamW
    let schedule: LearningRateSchedule
    public private(set) var rng: RandomGenerator
    public private(set) var step = 0

    public init(prior: ARPrior, options: ARTrainingOptions) {
        self.prior = prior
        self.options = options
        optimizer = AdamW(parameters: prior.parameters,
                          hyper: AdamWHyperparameters(learningRate: options.learningRate, beta1: 0.9, beta2: 0.95, weightDecay: 0.05))
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.learningRate / 10,
                                        warmupSteps: options.warmupSteps, totalSteps: options.steps)
        rng = RandomGenerator(seed: options.seed)
    }

    /// Draws a batch: examples at random, one caption each, dropped to empty at the config's rate.
    public func drawBatch(_ examples: [TokenizedExample]) -> (text: [Int32], image: [Int32]) {
        var text: [Int32] = [], image: [Int32] = []
        for _ in 0..<options.batchSize {
            let example = examples[rng.int(below: examples.count)]
            let caption = example.captions[rng.int(below: example.captions.count)]
            let dropped = rng.uniform() < prior.config.captionDropout
            text += prior.textTokens(dropped ? [] : caption)
            image += example.grid
        }
        return (text, image)
    }

    /// One update; returns the mean text and image cross-entropies.
    public func train(_ examples: [TokenizedExample]) -> (text: Float, image: Float) {
        let batch = drawBatch(examples)
        let tape = Tape()
        prior.parameters.zeroGrads()
        let loss = prior.loss(tape, text: batch.text, image: batch.image)
        tape.backward(loss.total)
        optimizer.update(learningRate: schedule.rate(at: step), maxGradientNorm: 1)
        step += 1
        return (loss.text, loss.image)
    }

    /// Mean image cross-entropy over examples (each with its first caption), in batches.
    public func validationLoss(_ examples: [TokenizedExample]) -> Float {
        var total: Double = 0
        for first in stride(from: 0, to: examples.count, by: options.batchSize) {
            let part = examples[first..<min(examples.count, first + options.batchSize)]
            let tape = Tape()
            let loss = prior.loss(tape, text: part.flatMap { prior.textTokens($0.captions[0]) }, image: part.flatMap(\.grid))
            tape.reset()
            total += Double(loss.image) * Double(part.count)
        }
        return Float(total / Double(max(1, examples.count)))
    }

    public func saveCheckpoint(to path: String, metadata: [String: String]) throws {
        var metadata = metadata
        metadata["tessera.ar.config"] = jsonText(prior.config)
        metadata["tessera.ar.training"] = jsonText(options)
        try Checkpoint.save(to: path, optimizers: [optimizer], state: TrainingState(step: step, rng: rng, metadata: metadata))
    }

    public func restoreCheckpoint(from path: String) throws -> [String: String] {
        let file = try SafetensorsFile(path: path)
        guard file.metadata["tessera.ar.config"] == jsonText(prior.config) else {
            throw TesseraError("this checkpoint was trained with another AR prior config", path: path)
        }
        let state = try Checkpoint.load(from: path, into: [optimizer])
        step = state.step
        rng = state.rng
        return state.metadata
    }
}
