// One training step of the autoencoder: reconstruction MSE (edge pixels weighted, if asked) + the
// quantizer's term (+ the generator's hinge term once the discriminator is on), AdamW with clipping
// and the warm-up + cosine schedule; then the discriminator's own step. Also the held-out figures:
// PSNR and, on Shapes data, the checker's exact match of reconstructions.
import Foundation
import TesseraData
import TesseraImage
import TesseraKernels
import TesseraTensor

public struct AutoencoderTrainingOptions: Codable, Equatable, Sendable {
    public var steps = 6000
    public var batchSize = 32
    public var learningRate: Float = 1e-3
    public var warmupSteps = 200
    /// 0 leaves the discriminator out.
    public var adversarialWeight: Float = 0
    /// The step from which the discriminator trains and its loss counts.
    public var adversarialStart = 2000
    /// Horizontal flips of training pictures (harmless for the autoencoder, not for a prior).
    public var flip = false
    /// How many times an edge pixel's squared error counts (1: plain MSE). Edge pixels are those
    /// whose colour differs from a 4-neighbour's; the loss is the weighted mean, so its scale
    /// stays that of an MSE.
    public var edgeWeight: Float = 1
    public var seed: UInt64 = 1
    /// Train only the decoder of an already trained model: the encoder and codebook stay fixed,
    /// so its token grids (and any prior trained on them) stay valid. Stable Diffusion's
    /// autoencoder was refined the same way (decoder fine-tuning, Rombach et al. 2022).
    public var decoderOnly = false

    public init() {}

    /// Reads options saved before a field existed with that field's default.
    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = AutoencoderTrainingOptions()
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? defaults.steps
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? defaults.batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? defaults.learningRate
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? defaults.warmupSteps
        adversarialWeight = try c.decodeIfPresent(Float.self, forKey: .adversarialWeight) ?? defaults.adversarialWeight
        adversarialStart = try c.decodeIfPresent(Int.self, forKey: .adversarialStart) ?? defaults.adversarialStart
        flip = try c.decodeIfPresent(Bool.self, forKey: .flip) ?? defaults.flip
        edgeWeight = try c.decodeIfPresent(Float.self, forKey: .edgeWeight) ?? defaults.edgeWeight
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? defaults.seed
        decoderOnly = try c.decodeIfPresent(Bool.self, forKey: .decoderOnly) ?? defaults.decoderOnly
    }
}

public final class AutoencoderTrainer {
    public struct Report {
        public var reconstruction: Float
        public var quantizer: Float
        public var adversarial: Float?
        public var discriminator: Float?
        /// exp(entropy) of this batch's code histogram.
        public var perplexity: Float
    }

    public let model: Autoencoder
    public let options: AutoencoderTrainingOptions
    let optimizer: AdamW
    /// What the optimiser leaves alone (`decoderOnly`: encoder and quantizer parameters);
    /// checkpoints keep it with the quantizer's buffers so a resumed run has it too.
    let frozen: [(name: String, tensor: Tensor)]
    let discriminator: PatchDiscriminator?
    let discriminatorOptimizer: AdamW?
    let schedule: LearningRateSchedule
    public var rng: RandomGenerator
    public private(set) var step = 0
    /// The last step each code was chosen (−1: never), for the share used over an epoch.
    public private(set) var lastUsed: [Int]

    public init(model: Autoencoder, options: AutoencoderTrainingOptions) {
        self.model = model
        self.options = options
        let isTrained = { (name: String) in !options.decoderOnly || name.hasPrefix(Autoencoder.decoderPrefix) }
        frozen = model.parameters.entries.filter { !isTrained($0.name) }.map { ($0.name, $0.tensor) }
        optimizer = AdamW(parameters: model.parameters.subset(where: isTrained),
                          hyper: AdamWHyperparameters(learningRate: options.learningRate, beta1: 0.9, beta2: 0.99, weightDecay: 1e-4))
        if options.adversarialWeight > 0 {
            let discriminator = PatchDiscriminator(seed: options.seed &+ 7)
            self.discriminator = discriminator
            discriminatorOptimizer = AdamW(parameters: discriminator.parameters,
                                           hyper: AdamWHyperparameters(learningRate: options.learningRate, beta1: 0.5, beta2: 0.9, weightDecay: 0))
        } else {
            discriminator = nil
            discriminatorOptimizer = nil
        }
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.learningRate / 20,
                                        warmupSteps: options.warmupSteps, totalSteps: options.steps)
        rng = RandomGenerator(seed: options.seed)
        lastUsed = [Int](repeating: -1, count: model.config.codebookSize)
    }

    /// One update from pictures (B, 3, H, W) in [−1, 1].
    public func train(pixels: [Float]) -> Report {
        let size = model.config.imageSize, batch = pixels.count / (3 * size * size)
        let x = Tensor(shape: [batch, 3, size, size], values: pixels)  // (B, 3, H, W)
        if options.flip { flipSomeHorizontally(x) }
        let tape = Tape()
        model.parameters.zeroGrads()
        let (latent, codes, quantizerLoss) = options.decoderOnly ? fixedLatent(x) : learnedLatent(tape, x)
        let reconstruction = model.decode(tape, latent)  // (B, 3, H, W)
        let error = tape.sub(reconstruction, x)
        let reconstructionLoss = reconstructionError(tape, error, x)
        var loss = quantizerLoss.map { tape.add(reconstructionLoss, $0) } ?? reconstructionLoss
        let adversarialOn = discriminator != nil && step >= options.adversarialStart
        var adversarial: Float?
        if adversarialOn, let discriminator {
            let generatorLoss = tape.scale(tape.mean(discriminator(tape, reconstruction)), by: -1)  // −E[D(x̂)]
            adversarial = generatorLoss.item
            loss = tape.add(loss, tape.scale(generatorLoss, by: options.adversarialWeight))
        }
        tape.backward(loss)
        optimizer.update(learningRate: schedule.rate(at: step), maxGradientNorm: 1)

        var discriminatorLoss: Float?
        if adversarialOn, let discriminator, let discriminatorOptimizer {
            discriminator.parameters.zeroGrads()
            let real = tape.hingeLoss(discriminator(tape, x), real: true)
            let fake = tape.hingeLoss(discriminator(tape, reconstruction.detached()), real: false)
            let total = tape.add(real, fake)
            discriminatorLoss = total.item
            tape.backward(total)
            discriminatorOptimizer.update(learningRate: schedule.rate(at: step), maxGradientNorm: 1)
        }
        for code in codes { lastUsed[Int(code)] = step }
        step += 1
        return Report(reconstruction: reconstructionLoss.item, quantizer: quantizerLoss?.item ?? 0, adversarial: adversarial,
                      discriminator: discriminatorLoss, perplexity: perplexity(codes))
    }

    /// The mean squared error, or with `edgeWeight` ≠ 1 its edge-weighted mean.
    private func reconstructionError(_ tape: Tape, _ error: Tensor, _ x: Tensor) -> Tensor {
        let squared = tape.mul(error, error)  // (B, 3, H, W)
        guard options.edgeWeight != 1 else { return tape.mean(squared) }
        let weights = Self.edgeWeights(x, weight: options.edgeWeight)  // (B, 3, H, W)
        let total = TesseraKernels.sum(weights.data, weights.count)
        return tape.scale(tape.mean(tape.mul(squared, weights)), by: Float(weights.count) / total)
    }

    /// `weight` at every channel of a pixel whose colour differs from one of its 4-neighbours'
    /// in pictures (B, 3, H, W), 1 elsewhere.
    public static func edgeWeights(_ x: Tensor, weight: Float) -> Tensor {
        let (batch, height, width) = (x.shape[0], x.shape[2], x.shape[3]), plane = height * width
        let weights = Tensor(shape: x.shape)
        for b in 0..<batch {
            let picture = x.data + b * 3 * plane
            func differ(_ p: Int, _ q: Int) -> Bool {
                (0..<3).contains { picture[$0 * plane + p] != picture[$0 * plane + q] }
            }
            for row in 0..<height {
                for column in 0..<width {
                    let p = row * width + column
                    let edge = (column > 0 && differ(p, p - 1)) || (column + 1 < width && differ(p, p + 1))
                        || (row > 0 && differ(p, p - width)) || (row + 1 < height && differ(p, p + width))
                    for c in 0..<3 { weights.data[b * 3 * plane + c * plane + p] = edge ? weight : 1 }
                }
            }
        }
        return weights
    }

    /// Encoder and quantizer on the tape (the quantizer updates its codebook and gives its loss).
    private func learnedLatent(_ tape: Tape, _ x: Tensor) -> (latent: Tensor, codes: [Int32], loss: Tensor?) {
        let head = model.encode(tape, x)  // (B, headChannels, h, w)
        let quantized = model.quantizer.quantize(tape, head, training: true, step: step, totalSteps: options.steps, rng: &rng)
        return (quantized.latent, quantized.codes, quantized.loss)
    }

    /// The fixed encoder's tokens, embedded as the decoder sees them at inference.
    private func fixedLatent(_ x: Tensor) -> (latent: Tensor, codes: [Int32], loss: Tensor?) {
        let (batch, side) = (x.shape[0], model.config.gridSize)
        let codes = model.tokens(x)
        return (model.quantizer.embed(codes, batch: batch, height: side, width: side), codes, nil)
    }

    /// Share of codes chosen at least once in the last `steps` steps.
    public func codebookUsage(overSteps steps: Int) -> Double {
        let used = lastUsed.filter { $0 >= 0 && $0 > step - 1 - max(1, steps) }.count
        return Double(used) / Double(lastUsed.count)
    }

    func perplexity(_ codes: [Int32]) -> Float {
        var counts = [Int](repeating: 0, count: model.config.codebookSize)
        for code in codes { counts[Int(code)] += 1 }
        var entropy: Double = 0
        for n in counts where n > 0 {
            let p = Double(n) / Double(codes.count)
            entropy -= p * log(p)
        }
        return Float(exp(entropy))
    }

    private func flipSomeHorizontally(_ x: Tensor) {
        let (batch, size) = (x.shape[0], x.shape[3])
        for b in 0..<batch where rng.uniform() < 0.5 {
            for row in 0..<(3 * size) {
                let line = x.data + (b * 3 * size + row) * size
                for i in 0..<(size / 2) { (line[i], line[size - 1 - i]) = (line[size - 1 - i], line[i]) }
            }
        }
    }

    // MARK: Checkpoints

    /// Everything needed to continue exactly: weights, optimiser moments, quantizer buffers,
    /// step, generator, and the caller's own metadata (e.g. where its data loader stands).
    public func saveCheckpoint(to path: String, metadata: [String: String]) throws {
        var metadata = metadata
        metadata["tessera.autoencoder.config"] = model.config.json()
        metadata["tessera.autoencoder.training"] = jsonText(options)
        try Checkpoint.save(to: path, optimizers: [optimizer] + (discriminatorOptimizer.map { [$0] } ?? []),
                            buffers: model.quantizer.buffers + frozen, state: TrainingState(step: step, rng: rng, metadata: metadata))
    }

    /// Restores a checkpoint written by `saveCheckpoint`; returns the caller's metadata.
    public func restoreCheckpoint(from path: String) throws -> [String: String] {
        let file = try SafetensorsFile(path: path)
        guard file.metadata["tessera.autoencoder.config"] == model.config.json() else {
            throw TesseraError("this checkpoint was trained with another autoencoder config", path: path)
        }
        let state = try Checkpoint.load(from: path, into: [optimizer] + (discriminatorOptimizer.map { [$0] } ?? []),
                                        buffers: model.quantizer.buffers + frozen)
        step = state.step
        rng = state.rng
        return state.metadata
    }
}

/// Held-out figures of an autoencoder: PSNR of pictures drawn from their own tokens (8-bit,
/// over the whole set's mean squared error) and, for 64 px pictures whose captions are all
/// Shapes captions, the share the Shapes checker reads back as that caption.
public struct ReconstructionScore: Sendable {
    public var images = 0
    public var psnr: Double = 0
    public var shapesExact: Double?
    /// Share of the codebook the set's token grids use.
    public var codebookUsage: Double = 0
}

extension Autoencoder {
    /// `each` sees every redrawn picture with its index.
    public func score(pictures: [[Float]], captions: [String], batchSize: Int = 32,
                      each: ((Int, Image) -> Void)? = nil) -> ReconstructionScore {
        let size = config.imageSize, plane = 3 * size * size
        var squaredError: Double = 0
        var shapes = Shapes.Score()
        let checkShapes = size == Shapes.canvasSide && !captions.isEmpty && captions.allSatisfy { Shapes.parse(caption: $0) != nil }
        var used = Set<Int32>()
        for first in stride(from: 0, to: pictures.count, by: batchSize) {
            let items = first..<min(pictures.count, first + batchSize)
            let x = Tensor(shape: [items.count, 3, size, size], values: Array(pictures[items].joined()))  // (B, 3, H, W)
            let codes = tokens(x)
            used.formUnion(codes)
            let drawn = self.pictures(tokens: codes, batch: items.count)  // (B, 3, H, W)
            for (offset, item) in items.enumerated() {
                let image = imageFromPlanar(drawn.data + offset * plane, width: size, height: size)
                let original = pictures[item]
                for c in 0..<3 {
                    for p in 0..<(size * size) {
                        let a = Double(image.pixels[p * 3 + c]) / 255, b = (Double(original[c * size * size + p]) + 1) / 2
                        squaredError += (a - b) * (a - b)
                    }
                }
                if checkShapes { shapes.add(caption: captions[item], image: image) }
                each?(item, image)
            }
        }
        let mse = squaredError / Double(max(1, pictures.count * plane))
        return ReconstructionScore(images: pictures.count, psnr: 10 * log10(1 / max(mse, 1e-12)),
                                   shapesExact: checkShapes ? shapes.exactAccuracy : nil,
                                   codebookUsage: Double(used.count) / Double(config.codebookSize))
    }
}
