// Training the AR prior on (caption, token grid) pairs: each step draws a batch of pairs and
// one caption of each with the trainer's generator, drops captions to empty at the configured
// rate, and takes one AdamW step. The generator is part of the checkpoint, so a resumed run
// draws the very same batches. Each batch is split across the workers (`DataParallel`), each
// with a replica of the prior that shares its values and keeps its own gradients.
import Foundation
import TesseraKernels
import TesseraTensor

public final class ARTrainer {
    public let prior: ARPrior
    public let options: PriorTrainingOptions
    let optimizer: AdamW
    let schedule: LearningRateSchedule
    /// The workers' models: the prior itself, then replicas of it.
    let workers: [ARPrior]
    public private(set) var rng: RandomGenerator
    public private(set) var step = 0

    /// `workers` (default: one per core) share each batch.
    public init(prior: ARPrior, options: PriorTrainingOptions, workers: Int = Threads.count) {
        self.prior = prior
        self.options = options
        optimizer = AdamW(parameters: prior.parameters,
                          hyper: AdamWHyperparameters(learningRate: options.learningRate, beta1: 0.9, beta2: 0.95, weightDecay: 0.05))
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.learningRate / 10,
                                        warmupSteps: options.warmupSteps, totalSteps: options.steps)
        rng = RandomGenerator(seed: options.seed)
        self.workers = [prior] + (1..<max(1, min(workers, options.batchSize))).map { _ in ARPrior(replicaOf: prior) }
    }

    /// Draws a batch: examples at random, one caption each (the first at `firstCaptionRate`,
    /// otherwise any), dropped to empty at the config's rate.
    public func drawBatch(_ examples: [TokenizedExample]) -> (text: [Int32], image: [Int32]) {
        var text: [Int32] = [], image: [Int32] = []
        for _ in 0..<options.batchSize {
            let example = examples[rng.int(below: examples.count)]
            text += prior.textTokens(options.drawCaption(from: example.captions, dropout: prior.config.captionDropout, rng: &rng))
            image += example.grid
        }
        return (text, image)
    }

    /// One update; returns the mean text and image cross-entropies.
    public func train(_ examples: [TokenizedExample]) -> (text: Float, image: Float) {
        let batch = drawBatch(examples)
        let (t, n, size) = (prior.config.textLength, prior.config.imageLength, options.batchSize)
        var losses = [(text: Float, image: Float)](repeating: (0, 0), count: workers.count)
        losses.withUnsafeMutableBufferPointer { losses in
            DataParallel.backward(workers.map(\.parameters), batch: size) { w, share, tape in
                let loss = workers[w].loss(tape, text: Array(batch.text[share.lowerBound * t..<share.upperBound * t]),
                                           image: Array(batch.image[share.lowerBound * n..<share.upperBound * n]))
                let weight = Float(share.count) / Float(size)
                losses[w] = (weight * loss.text, weight * loss.image)
                return loss.total
            }
        }
        optimizer.update(learningRate: schedule.rate(at: step), maxGradientNorm: 1)
        step += 1
        return (losses.map(\.text).reduce(0, +), losses.map(\.image).reduce(0, +))
    }

    /// Mean image cross-entropy over examples (each with its first caption), in batches.
    public func validationLoss(_ examples: [TokenizedExample]) -> Float {
        Float(DataParallel.mean(count: examples.count, batchSize: options.batchSize, workers: workers.count) { w, items in
            let part = examples[items]
            let tape = Tape()
            defer { tape.reset() }
            return Double(workers[w].loss(tape, text: part.flatMap { prior.textTokens($0.captions[0]) }, image: part.flatMap(\.grid)).image)
        })
    }

    public func saveCheckpoint(to path: String, metadata: [String: String]) throws {
        try PairCheckpoint.save(to: path, part: "ar", config: prior.config, options: options, optimizer: optimizer,
                                step: step, rng: rng, metadata: metadata)
    }

    public func restoreCheckpoint(from path: String) throws -> [String: String] {
        let state = try PairCheckpoint.restore(from: path, part: "ar", label: "AR prior", config: prior.config,
                                               optimizer: optimizer)
        step = state.step
        rng = state.rng
        return state.metadata
    }
}
