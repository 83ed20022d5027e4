// The scorer: a two-tower contrastive model in the manner of CLIP (Radford et al. 2021),
// trained on the same pairs as the priors and used only to judge and rerank their pictures.
// The text tower is a small transformer over the caption's tokens (one pad per free position,
// as in the priors) under full attention; its last position, projected, is the caption's
// feature. The image tower reads pixels, not the autoencoder's latent, so it judges exactly the
// picture a user sees: stride-2 3×3 convolutions with group norm and SiLU down to a small grid,
// flattened (positions matter: captions say "top left") and projected. Both features are
// l2-normalised; their cosine, scaled by a learnable temperature, is the pair's logit.
import Foundation
import TesseraAttention
import TesseraTensor

public struct ScorerConfig: Codable, Equatable, Sendable {
    /// Ttext, text positions (captions are cut to this many tokens).
    public var textLength: Int
    /// BPE tokens, special tokens included.
    public var textVocabularySize: Int
    /// Side of the square pictures the image tower reads.
    public var imageSize: Int
    public var textWidth: Int
    public var textLayers: Int
    public var textHeads: Int
    /// Output channels of the image tower's convolutions: the first keeps the picture's size,
    /// each later one halves it.
    public var imageChannels: [Int]
    /// E, the dimension of the shared feature space.
    public var embedding: Int

    public init(textLength: Int = 32, textVocabularySize: Int, imageSize: Int, textWidth: Int = 128, textLayers: Int = 3,
                textHeads: Int = 4, imageChannels: [Int] = [32, 64, 128, 128, 128], embedding: Int = 128) {
        self.textLength = textLength
        self.textVocabularySize = textVocabularySize
        self.imageSize = imageSize
        self.textWidth = textWidth
        self.textLayers = textLayers
        self.textHeads = textHeads
        self.imageChannels = imageChannels
        self.embedding = embedding
    }

    /// Text tokens and one pad token per text position.
    public var textClasses: Int { textVocabularySize + textLength }
    /// Side of the image tower's last grid.
    public var finalSide: Int { imageSize >> (imageChannels.count - 1) }

    public func validate(path: String? = nil) throws {
        func fail(_ problem: String) -> TesseraError { TesseraError("scorer config: \(problem)", path: path) }
        guard (1...512).contains(textLength), (1...1_000_000).contains(textVocabularySize) else {
            throw fail("text length \(textLength) must be 1…512, vocabulary \(textVocabularySize) 1…1,000,000")
        }
        guard (1...64).contains(textLayers), textHeads >= 1, (1...4096).contains(textWidth), textWidth % textHeads == 0 else {
            throw fail("text width \(textWidth) must divide into \(textHeads) heads; 1…64 layers")
        }
        guard (1...8).contains(imageChannels.count), imageChannels.allSatisfy({ (1...1024).contains($0) && $0 % 8 == 0 }) else {
            throw fail("image channels \(imageChannels) must be 1…8 stages of 8…1,024 (multiples of 8)")
        }
        guard (8...1024).contains(imageSize), imageSize % (1 << (imageChannels.count - 1)) == 0, finalSide >= 1 else {
            throw fail("picture side \(imageSize) must be 8…1,024 and divisible by 2^\(imageChannels.count - 1)")
        }
        guard (1...4096).contains(embedding) else { throw fail("embedding \(embedding) must be 1…4,096") }
    }
}

public final class Scorer {
    public let config: ScorerConfig
    public let parameters: ParameterStore
    let tokenEmbedding: Tensor  // (Vtext + Ttext, Ct)
    let positionEmbedding: Tensor  // (Ttext, Ct)
    let blocks: [TransformerBlock]
    let finalNorm: LayerNorm
    let textProjection: Linear
    let convolutions: [Conv2d]
    let norms: [FeatureNorm]
    let imageProjection: Linear
    /// log of the logit scale (CLIP starts it at 1/0.07).
    let logScale: Tensor  // (1)

    /// CLIP caps the scale at 100 so training cannot make the logits arbitrarily sharp.
    public static let maximumLogScale: Float = log(100)

    public convenience init(config: ScorerConfig, seed: UInt64) {
        self.init(config: config, seed: seed, parameters: ParameterStore())
    }

    /// A replica for another training worker: the same values, its own gradients.
    public convenience init(replicaOf other: Scorer) {
        self.init(config: other.config, seed: 0, parameters: ParameterStore(mirroring: other.parameters))
    }

    private init(config: ScorerConfig, seed: UInt64, parameters: ParameterStore) {
        self.config = config
        self.parameters = parameters
        var rng = RandomGenerator(seed: seed)
        let c = config.textWidth
        tokenEmbedding = parameters.add("scorer.text.token_embedding", shape: [config.textClasses, c], .normal(std: 0.02),
                                        decays: false, rng: &rng)
        positionEmbedding = parameters.add("scorer.text.position_embedding", shape: [config.textLength, c],
                                           .normal(std: 0.02), decays: false, rng: &rng)
        blocks = (0..<config.textLayers).map { i in
            TransformerBlock(parameters, "scorer.text.block\(i)", width: c, numHeads: config.textHeads,
                             layers: config.textLayers, rng: &rng)
        }
        finalNorm = LayerNorm(parameters, "scorer.text.final_norm", width: c, rng: &rng)
        textProjection = Linear(parameters, "scorer.text.projection", in: c, out: config.embedding, rng: &rng)
        var convolutions: [Conv2d] = [], norms: [FeatureNorm] = []
        var inputs = 3
        for (i, channels) in config.imageChannels.enumerated() {
            convolutions.append(Conv2d(parameters, "scorer.image.conv\(i)", in: inputs, out: channels, kernel: 3,
                                       stride: i == 0 ? 1 : 2, padding: 1, rng: &rng))
            norms.append(FeatureNorm(parameters, "scorer.image.norm\(i)", channels: channels, groups: 8, rng: &rng))
            inputs = channels
        }
        self.convolutions = convolutions
        self.norms = norms
        let flat = inputs * config.finalSide * config.finalSide
        imageProjection = Linear(parameters, "scorer.image.projection", in: flat, out: config.embedding,
                                 std: 1 / Float(flat).squareRoot(), rng: &rng)
        logScale = parameters.add("scorer.log_scale", shape: [1], .constant(log(1 / 0.07)), decays: false, rng: &rng)
    }

    /// A caption's BPE ids as the tower's text tokens: cut to Ttext, then each free position's pad.
    public func textTokens(_ ids: [Int32]) -> [Int32] {
        paddedText(ids, textLength: config.textLength, vocabularySize: config.textVocabularySize)
    }

    // MARK: Towers

    /// Text tokens (B·Ttext, from `textTokens`) → unit features (B, E).
    public func encodeText(_ tape: Tape, _ tokens: [Int32]) -> Tensor {
        let t = config.textLength, batch = tokens.count / t
        precondition(tokens.count == batch * t && batch > 0, "Scorer.encodeText: \(tokens.count) tokens for Ttext \(t)")
        let positions = (0..<batch).flatMap { _ in (0..<Int32(t)).map { $0 } }
        var h = tape.add(tape.embedding(tokenEmbedding, ids: tokens, idShape: [batch, t]),
                         tape.embedding(positionEmbedding, ids: positions, idShape: [batch, t]))  // (B, T, C)
        for block in blocks { h = block(tape, h, mask: .full) }
        let last = tape.reshape(tape.slice(h, axis: 1, (t - 1)..<t), [batch, config.textWidth])  // (B, C)
        return unit(tape, textProjection(tape, finalNorm(tape, last)))
    }

    /// Pictures (B, 3, S, S) in [−1, 1] → unit features (B, E).
    public func encodeImage(_ tape: Tape, _ pictures: Tensor) -> Tensor {
        precondition(pictures.shape.count == 4 && pictures.shape[1] == 3 && pictures.shape[2] == config.imageSize
                     && pictures.shape[3] == config.imageSize,
                     "Scorer.encodeImage: pictures \(pictures.shape) are not (B, 3, \(config.imageSize), \(config.imageSize))")
        var h = pictures
        for (conv, norm) in zip(convolutions, norms) { h = tape.silu(norm(tape, conv(tape, h))) }  // (B, C, s, s)
        let batch = pictures.shape[0]
        return unit(tape, imageProjection(tape, tape.reshape(h, [batch, h.count / batch])))
    }

    /// Rows of x (B, E) scaled to unit length.
    private func unit(_ tape: Tape, _ x: Tensor) -> Tensor {
        let (batch, e) = (x.shape[0], x.shape[1])
        return tape.reshape(tape.l2NormalizeChannels(tape.reshape(x, [batch, e, 1, 1])), [batch, e])
    }

    // MARK: Training

    /// The symmetric contrastive loss of CLIP over B matching (text, image) feature rows: the
    /// mean of the cross-entropies of each caption over the B pictures and of each picture
    /// over the B captions, with the diagonal as the targets.
    public func contrastiveLoss(_ tape: Tape, text: Tensor, image: Tensor) -> Tensor {
        let batch = text.shape[0]
        let targets = (0..<Int32(batch)).map { $0 }
        let weights = [Float](repeating: 0.5 / Float(batch), count: batch)
        let scale = tape.exp(logScale, maximum: Scorer.maximumLogScale)  // (1)
        let perText = tape.scale(tape.matmul(text, image, transposeB: true), byScalar: scale)  // (B, B)
        let perImage = tape.scale(tape.matmul(image, text, transposeB: true), byScalar: scale)  // (B, B)
        return tape.add(tape.crossEntropy(perText, targets: targets, weights: weights),
                        tape.crossEntropy(perImage, targets: targets, weights: weights))
    }

    /// The current logit scale, exp(log scale) capped at 100.
    public var logitScale: Float { exp(min(logScale.data[0], Scorer.maximumLogScale)) }

    // MARK: Inference

    /// Unit features of captions' BPE ids, (B·E) row by row, in batches of `batchSize`.
    public func textFeatures(_ captions: [[Int32]], batchSize: Int = 64) -> [Float] {
        var result = [Float]()
        for first in stride(from: 0, to: captions.count, by: batchSize) {
            let part = captions[first..<min(captions.count, first + batchSize)]
            let tape = Tape()
            result += encodeText(tape, part.flatMap { textTokens($0) }).values
            tape.reset()
        }
        return result
    }

    /// Unit features of pictures given as (3, S, S) planes in [−1, 1], (B·E) row by row.
    public func imageFeatures(_ pictures: [[Float]], batchSize: Int = 64) -> [Float] {
        let s = config.imageSize
        var result = [Float]()
        for first in stride(from: 0, to: pictures.count, by: batchSize) {
            let part = pictures[first..<min(pictures.count, first + batchSize)]
            let tape = Tape()
            result += encodeImage(tape, Tensor(shape: [part.count, 3, s, s], values: part.flatMap { $0 })).values
            tape.reset()
        }
        return result
    }
}
