// Training the scorer on (caption, picture) pairs: each step draws B distinct pictures and one
// caption of each with the trainer's generator (so a resumed run draws the very same batches),
// computes both towers' features on the workers' shares of the batch, and takes one AdamW step
// on the contrastive loss over the whole batch (`DataParallel.backward(outputs:loss:)`: every
// caption is compared with every picture, across shares).
import Foundation
import TesseraKernels
import TesseraTensor

/// One training pair: a picture as (3, S, S) bytes and the BPE ids of each of its captions.
public struct ScorerExample: Sendable {
    public var captions: [[Int32]]
    public var pixels: [UInt8]

    public init(captions: [[Int32]], pixels: [UInt8]) {
        self.captions = captions
        self.pixels = pixels
    }

    /// The picture as (3, S, S) floats in [−1, 1].
    public var planar: [Float] { pixels.map { Float($0) / 127.5 - 1 } }
}

public final class ScorerTrainer {
    public let scorer: Scorer
    /// The priors' options serve: steps, batch, learning rate, warm-up, seed, first-caption rate.
    public let options: PriorTrainingOptions
    let optimizer: AdamW
    let schedule: LearningRateSchedule
    let workers: [Scorer]
    public private(set) var rng: RandomGenerator
    public private(set) var step = 0

    public init(scorer: Scorer, options: PriorTrainingOptions, workers: Int = Threads.count) {
        self.scorer = scorer
        self.options = options
        // CLIP's AdamW settings (β2 0.98, decoupled weight decay 0.2).
        optimizer = AdamW(parameters: scorer.parameters,
                          hyper: AdamWHyperparameters(learningRate: options.learningRate, beta1: 0.9, beta2: 0.98, weightDecay: 0.2))
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.learningRate / 10,
                                        warmupSteps: options.warmupSteps, totalSteps: options.steps)
        rng = RandomGenerator(seed: options.seed)
        self.workers = [scorer] + (1..<max(1, min(workers, options.batchSize))).map { _ in Scorer(replicaOf: scorer) }
    }

    /// B distinct examples (a picture twice in a batch would be its own negative), one caption
    /// each: the first at `firstCaptionRate`, otherwise any.
    public func drawBatch(_ examples: [ScorerExample]) -> (text: [Int32], pictures: [Float]) {
        precondition(examples.count >= options.batchSize, "ScorerTrainer: \(examples.count) examples for a batch of \(options.batchSize)")
        var chosen = Set<Int>(), text: [Int32] = [], pictures: [Float] = []
        while chosen.count < options.batchSize {
            let index = rng.int(below: examples.count)
            guard chosen.insert(index).inserted else { continue }
            let example = examples[index]
            text += scorer.textTokens(options.drawCaption(from: example.captions, dropout: 0, rng: &rng))
            pictures += example.planar
        }
        return (text, pictures)
    }

    /// One update; returns the contrastive loss.
    public func train(_ examples: [ScorerExample]) -> Float {
        let batch = drawBatch(examples)
        let (t, s, b, e) = (scorer.config.textLength, scorer.config.imageSize, options.batchSize, scorer.config.embedding)
        let plane = 3 * s * s
        let loss = DataParallel.backward(workers.map(\.parameters), batch: b, outputs: { w, share, tape in
            let text = workers[w].encodeText(tape, Array(batch.text[share.lowerBound * t..<share.upperBound * t]))
            let image = workers[w].encodeImage(tape, Tensor(
                shape: [share.count, 3, s, s], values: Array(batch.pictures[share.lowerBound * plane..<share.upperBound * plane])))
            return tape.concatenate([text, image], axis: 0)  // (2·share, E): captions, then pictures
        }, loss: { tape, outputs in
            let halves = outputs.map { tape.reshape($0, [2, $0.shape[0] / 2, e]) }  // per worker (2, share, E)
            func part(_ i: Int) -> Tensor {
                tape.reshape(tape.concatenate(halves.map { tape.slice($0, axis: 0, i..<i + 1) }, axis: 1), [b, e])
            }
            return scorer.contrastiveLoss(tape, text: part(0), image: part(1))
        })
        optimizer.update(learningRate: schedule.rate(at: step), maxGradientNorm: 1)
        step += 1
        return loss
    }

    /// Held-out figures in batches of the training batch size (each picture with its first
    /// caption): the mean contrastive loss and the share of pictures whose own caption scores
    /// highest among the batch's captions.
    public func validation(_ examples: [ScorerExample]) -> (loss: Float, accuracy: Float) {
        let b = options.batchSize, e = scorer.config.embedding, scale = scorer.logitScale
        var loss: Double = 0, correct = 0, batches = 0
        for first in stride(from: 0, to: examples.count - b + 1, by: b) {
            let part = examples[first..<first + b]
            let text = scorer.textFeatures(part.map { $0.captions[0] }), image = scorer.imageFeatures(part.map(\.planar))
            var logits = [Double](repeating: 0, count: b * b)  // [picture i, caption j]
            image.withUnsafeBufferPointer { image in
                text.withUnsafeBufferPointer { text in
                    for i in 0..<b {
                        for j in 0..<b { logits[i * b + j] = Double(scale * dot(image.baseAddress! + i * e, text.baseAddress! + j * e, e)) }
                    }
                }
            }
            for i in 0..<b where (0..<b).max(by: { logits[i * b + $0] < logits[i * b + $1] }) == i { correct += 1 }
            // Cross-entropy of each picture over the captions and of each caption over the pictures.
            for i in 0..<b {
                let row = (0..<b).map { logits[i * b + $0] }, column = (0..<b).map { logits[$0 * b + i] }
                loss += 0.5 * (logSumExp(row) - row[i] + logSumExp(column) - column[i]) / Double(b)
            }
            batches += 1
        }
        guard batches > 0 else { return (.nan, .nan) }
        return (Float(loss / Double(batches)), Float(correct) / Float(batches * b))
    }

    public func saveCheckpoint(to path: String, metadata: [String: String]) throws {
        try PairCheckpoint.save(to: path, part: "scorer", config: scorer.config, options: options, optimizer: optimizer,
                                step: step, rng: rng, metadata: metadata)
    }

    public func restoreCheckpoint(from path: String) throws -> [String: String] {
        let state = try PairCheckpoint.restore(from: path, part: "scorer", label: "scorer", config: scorer.config,
                                               optimizer: optimizer)
        step = state.step
        rng = state.rng
        return state.metadata
    }
}

func logSumExp(_ x: [Double]) -> Double {
    let top = x.max() ?? 0
    return top + log(x.reduce(0) { $0 + exp($1 - top) })
}
