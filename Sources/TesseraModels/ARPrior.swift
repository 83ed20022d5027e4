// The autoregressive prior (DALL-E, Ramesh et al. 2021): a decoder-only transformer over
// [text tokens ; image tokens in raster order]. Each text position has its own pad token, so
// the model always knows where the caption ends; image positions get row and column
// embeddings; the loss is a weighted sum of text and image cross-entropy.
import Foundation
import TesseraAttention
import TesseraTensor

public struct ARPriorConfig: Codable, Equatable, Sendable {
    /// Ttext, text positions (captions are cut to this many tokens).
    public var textLength: Int
    /// BPE tokens, special tokens included.
    public var textVocabularySize: Int
    public var gridHeight: Int
    public var gridWidth: Int
    /// K, the autoencoder's codebook size.
    public var codebookSize: Int
    public var width: Int
    public var layers: Int
    public var numHeads: Int
    /// Share of the loss on text; the image gets 1 − this (DALL-E: 1/8 and 7/8).
    public var textLossWeight: Float
    /// Probability of training on an empty caption, which classifier-free guidance needs.
    public var captionDropout: Float

    public init(textLength: Int = 32, textVocabularySize: Int, gridHeight: Int, gridWidth: Int, codebookSize: Int,
                width: Int = 192, layers: Int = 6, numHeads: Int = 6, textLossWeight: Float = 1.0 / 8,
                captionDropout: Float = 0.1) {
        self.textLength = textLength
        self.textVocabularySize = textVocabularySize
        self.gridHeight = gridHeight
        self.gridWidth = gridWidth
        self.codebookSize = codebookSize
        self.width = width
        self.layers = layers
        self.numHeads = numHeads
        self.textLossWeight = textLossWeight
        self.captionDropout = captionDropout
    }

    public var imageLength: Int { gridHeight * gridWidth }
    /// Positions the model reads: every token but the last image token.
    public var inputLength: Int { textLength + imageLength - 1 }
    /// Text tokens and one pad token per text position.
    public var textClasses: Int { textVocabularySize + textLength }

    public func validate(path: String? = nil) throws {
        func fail(_ problem: String) -> TesseraError { TesseraError("AR prior config: \(problem)", path: path) }
        guard (1...512).contains(textLength), (1...1_000_000).contains(textVocabularySize) else {
            throw fail("text length \(textLength) must be 1…512, vocabulary \(textVocabularySize) 1…1,000,000")
        }
        guard (1...128).contains(gridHeight), (1...128).contains(gridWidth), (2...65_536).contains(codebookSize) else {
            throw fail("grid \(gridHeight)×\(gridWidth) must be 1…128 a side, codebook \(codebookSize) 2…65,536")
        }
        guard (1...64).contains(layers), numHeads >= 1, width >= 1, width <= 4096, width % numHeads == 0 else {
            throw fail("width \(width) must divide into \(numHeads) heads; 1…64 layers")
        }
        guard (0...1).contains(textLossWeight), (0...1).contains(captionDropout) else {
            throw fail("text loss weight and caption dropout must be in [0, 1]")
        }
    }
}

public final class ARPrior {
    public let config: ARPriorConfig
    public let parameters: ParameterStore
    /// Rows: text tokens, then one pad per text position, then the image codes.
    let tokenEmbedding: Tensor  // (Vtext + Ttext + K, C)
    /// Rows: text positions, image rows, image columns, and one row text positions add as their second part.
    let positionEmbedding: Tensor  // (Ttext + h + w + 1, C)
    let blocks: [TransformerBlock]
    let finalNorm: LayerNorm
    let textHead: Linear
    let imageHead: Linear

    public convenience init(config: ARPriorConfig, seed: UInt64) {
        self.init(config: config, seed: seed, parameters: ParameterStore())
    }

    /// A replica for another training worker: the same values, its own gradients.
    public convenience init(replicaOf other: ARPrior) {
        self.init(config: other.config, seed: 0, parameters: ParameterStore(mirroring: other.parameters))
    }

    private init(config: ARPriorConfig, seed: UInt64, parameters: ParameterStore) {
        self.config = config
        self.parameters = parameters
        var rng = RandomGenerator(seed: seed)
        let c = config.width
        tokenEmbedding = parameters.add("ar.token_embedding", shape: [config.textClasses + config.codebookSize, c],
                                        .normal(std: 0.02), decays: false, rng: &rng)
        positionEmbedding = parameters.add("ar.position_embedding",
                                           shape: [config.textLength + config.gridHeight + config.gridWidth + 1, c],
                                           .normal(std: 0.02), decays: false, rng: &rng)
        var blocks: [TransformerBlock] = []
        for i in 0..<config.layers {
            blocks.append(TransformerBlock(parameters, "ar.block\(i)", width: c, numHeads: config.numHeads,
                                           layers: config.layers, rng: &rng))
        }
        self.blocks = blocks
        finalNorm = LayerNorm(parameters, "ar.final_norm", width: c, rng: &rng)
        textHead = Linear(parameters, "ar.text_head", in: c, out: config.textClasses, rng: &rng)
        imageHead = Linear(parameters, "ar.image_head", in: c, out: config.codebookSize, rng: &rng)
    }

    // MARK: Sequences

    /// A caption's BPE ids as Ttext text tokens: cut to Ttext, then each free position's own pad.
    public func textTokens(_ ids: [Int32]) -> [Int32] {
        paddedText(ids, textLength: config.textLength, vocabularySize: config.textVocabularySize)
    }

    /// The text tokens of the empty caption (all pads), which guidance conditions on.
    public var emptyText: [Int32] { textTokens([]) }

    /// Embedding-table rows of sequence position `position` holding `token` (a text token, a
    /// pad, or an image code).
    func tableRows(position: Int, token: Int32) -> (token: Int32, first: Int32, second: Int32) {
        let t = config.textLength, none = Int32(t + config.gridHeight + config.gridWidth)
        if position < t { return (token, Int32(position), none) }
        let j = position - t
        return (Int32(config.textClasses) + token, Int32(t + j / config.gridWidth),
                Int32(t + config.gridHeight + j % config.gridWidth))
    }

    /// Token plus position embeddings of `tokens` (B rows of `length`) starting at `start`.
    func embed(_ tape: Tape, _ tokens: [Int32], batch: Int, start: Int, length: Int) -> Tensor {
        var ids = [Int32](), firsts = [Int32](), seconds = [Int32]()
        for b in 0..<batch {
            for i in 0..<length {
                let rows = tableRows(position: start + i, token: tokens[b * length + i])
                ids.append(rows.token)
                firsts.append(rows.first)
                seconds.append(rows.second)
            }
        }
        let shape = [batch, length]
        let x = tape.add(tape.embedding(tokenEmbedding, ids: ids, idShape: shape),
                         tape.embedding(positionEmbedding, ids: firsts, idShape: shape))  // (B, T, C)
        return tape.add(x, tape.embedding(positionEmbedding, ids: seconds, idShape: shape))
    }

    // MARK: Training

    public struct Loss {
        public var total: Tensor
        /// Mean cross-entropies (nats per token) of the text and image parts.
        public var text: Float
        public var image: Float
    }

    /// text (B·Ttext) from `textTokens`, image (B·h·w) codes.
    public func loss(_ tape: Tape, text: [Int32], image: [Int32]) -> Loss {
        let (t, n) = (config.textLength, config.imageLength)
        let batch = image.count / n
        precondition(text.count == batch * t && image.count == batch * n,
                     "ARPrior.loss: \(text.count) text and \(image.count) image tokens for Ttext \(t), h·w \(n)")
        let length = config.inputLength
        var sequence = [Int32]()  // (B, T − 1): everything but the last image token
        var textTargets = [Int32](), imageTargets = [Int32]()  // (B·(T − 1)) each, −1 where the other part counts
        for b in 0..<batch {
            let full = Array(text[b * t..<(b + 1) * t]) + Array(image[b * n..<(b + 1) * n])
            sequence += full.prefix(length)
            for i in 0..<length {
                let next = full[i + 1]
                textTargets.append(i + 1 < t ? next : -1)
                imageTargets.append(i + 1 >= t ? next : -1)
            }
        }
        let hidden = finalNorm(tape, forward(tape, embed(tape, sequence, batch: batch, start: 0, length: length)))  // (B, T−1, C)
        let textWeight = config.textLossWeight, imageWeight = 1 - config.textLossWeight
        let textRows = Float(batch * (t - 1)), imageRows = Float(batch * n)
        var total = tape.crossEntropy(imageHead(tape, hidden), targets: imageTargets,
                                      weights: imageTargets.map { $0 < 0 ? 0 : imageWeight / imageRows })
        let imageLoss = total.item / max(imageWeight, 1e-12)
        var textLoss: Float = 0
        if t > 1 && textWeight > 0 {
            let part = tape.crossEntropy(textHead(tape, hidden), targets: textTargets,
                                         weights: textTargets.map { $0 < 0 ? 0 : textWeight / textRows })
            textLoss = part.item / textWeight
            total = tape.add(total, part)
        }
        return Loss(total: total, text: textLoss, image: imageLoss)
    }

    /// The blocks over x (B, T, C), causally.
    func forward(_ tape: Tape, _ x: Tensor) -> Tensor {
        var h = x
        for block in blocks { h = block(tape, h, mask: .causal) }
        return h
    }

    // MARK: Incremental decoding

    public func makeCache(batch: Int) -> KVCache {
        KVCache(layers: config.layers, batch: batch, heads: config.numHeads, maximumLength: config.inputLength,
                headSize: config.width / config.numHeads)
    }

    /// Feeds `tokens` (B rows of `length`, positions start…start+length−1) through the cache and
    /// returns the image logits after the last of them, (B, K).
    public func decodeStep(_ tokens: [Int32], batch: Int, start: Int, cache: KVCache) -> [Float] {
        let tape = Tape()
        defer { tape.reset() }
        let length = tokens.count / batch
        var h = embed(tape, tokens, batch: batch, start: start, length: length)  // (B, Tnew, C)
        for (layer, block) in blocks.enumerated() { h = block.decode(tape, h, cache: cache, layer: layer) }
        let c = config.width
        let last = Tensor(shape: [batch, c])  // (B, C) the newest position of each row
        for b in 0..<batch { (last.data + b * c).update(from: h.data + (b * length + length - 1) * c, count: c) }
        return imageHead(tape, finalNorm(tape, last)).values  // (B, K)
    }

    /// Image logits at every image position of full sequences, without a cache (B, h·w, K):
    /// the reference the cached path must match.
    public func imageLogits(text: [Int32], image: [Int32]) -> [Float] {
        let (t, n) = (config.textLength, config.imageLength)
        let batch = image.count / n
        var sequence = [Int32]()
        for b in 0..<batch { sequence += Array(text[b * t..<(b + 1) * t]) + Array(image[b * n..<(b * n + n - 1)]) }
        let tape = Tape()
        defer { tape.reset() }
        let hidden = finalNorm(tape, forward(tape, embed(tape, sequence, batch: batch, start: 0, length: config.inputLength)))
        let logits = imageHead(tape, hidden).values  // (B, T−1, K)
        let k = config.codebookSize
        var result = [Float]()
        for b in 0..<batch {
            let first: Int = (b * config.inputLength + t - 1) * k
            result += logits[first..<(first + n * k)]
        }
        return result
    }
}
