// The diffusion prior: a DiT (Peebles & Xie 2023) that denoises the latent grid — the
// codebook vectors of a picture's tokens, normalised per channel — with the caption's tokens in
// the same sequence under full attention. The noise level conditions every block through
// adaLN-Zero: a projection of the timestep embedding shifts, scales and gates each branch, and
// starts at zero so every block starts as the identity. The caption also enters that
// conditioning as its mean word embedding, layer-normed and added to the timestep embedding (as
// SD3's MMDiT adds its pooled text vector, Esser et al. 2024), a direct path from the words to
// every block. The grid's row and column embeddings start as DiT's 2-D sin-cos table. (Before
// those two starting scales, a 6-layer prior on Shapes ignored everything in its caption but
// the background: README.) The model predicts v. Like DiT, it can cut the grid into p×p patches, one sequence position each
// (p²·D values in and out): p = 2 gives a 16×16 grid 64 positions instead of 256, about a third
// of the work per picture.
import Foundation
import TesseraAttention
import TesseraTensor

public struct DiffusionPriorConfig: Codable, Equatable, Sendable {
    /// Ttext, text positions (captions are cut to this many tokens).
    public var textLength: Int
    /// BPE tokens, special tokens included.
    public var textVocabularySize: Int
    public var gridHeight: Int
    public var gridWidth: Int
    /// K, the autoencoder's codebook size (the snapped grid's ids).
    public var codebookSize: Int
    /// D, the dimension of a code vector: the latent's channels.
    public var latentChannels: Int
    public var width: Int
    public var layers: Int
    public var numHeads: Int
    /// Probability of training on an empty caption, which classifier-free guidance needs.
    public var captionDropout: Float
    /// T, the noise levels of the cosine schedule.
    public var diffusionSteps: Int
    /// p: each sequence position holds a p×p patch of the grid.
    public var patchSize: Int
    /// Self-conditioning (Chen et al. 2022, "Analog Bits"): beside the noisy latent, the
    /// denoiser sees its own previous prediction of the clean latent (zeros when there is none).
    public var selfCondition: Bool
    /// Plain transformer blocks (full attention, no time conditioning) that read the caption on
    /// its own before it joins the latent positions; 0: the caption's embeddings join directly.
    public var textLayers: Int
    /// Whether the caption's mean word embedding joins the timestep embedding in every block's
    /// adaLN conditioning. That mean is a bag of words: "a red circle … and a blue square" and
    /// "a blue circle … and a red square" pool alike, so off, the caption reaches the latents only
    /// through attention, which can tell which colour goes with which shape (on Shapes it did not
    /// learn to within 2,500 steps: README).
    public var pooledCaption: Bool
    /// Whether the caption's tokens are context only: every block updates the latent positions
    /// and hands the caption's states on as they came in (from the text encoder, or the
    /// embeddings). The blocks' adaLN gates are shared by all positions and tuned to the latents,
    /// whose unit-scale grid positions dwarf the caption's 0.02-scale embeddings, so updated
    /// alongside them the caption's tokens may soon lose what they said.
    public var captionContext: Bool
    /// Whether the caption enters through cross-attention instead (PixArt-α, Chen et al. 2023):
    /// the sequence holds only the latent positions, and each block, after its self-attention,
    /// lets them attend to the caption's tokens (from the text encoder, or the embeddings)
    /// through a layer norm of their own, ungated by the noise level.
    public var crossAttention: Bool
    /// Whether a caption vector that knows word order joins the conditioning: the caption's word
    /// embeddings flattened in order (Ttext·C values, layer-normed) and projected to C (from zero
    /// beside the pooled mean). Unlike the mean it tells "a red circle … and a blue square" from
    /// "a blue circle … and a red square", so every block could see which colour goes with which
    /// shape (on Shapes that did not fix binding within 2,500 steps: README).
    public var flatCaption: Bool
    /// Whether each latent position also gets an embedding of its own cell, beside its row's and
    /// its column's (zero at the start). Row plus column is separable: a first layer reading it
    /// linearly answers "an object here?" as f(row) + g(column), and priors drew "… in the top
    /// right and … on the left" as four objects, at every pairing of the two rows and two
    /// columns (with this embedding too, after 2,500 steps: README).
    public var cellEmbedding: Bool
    /// λ of an auxiliary cross-entropy: a second head reads the same final states as v's and
    /// names each cell's clean token, scored against the grid's own (0: no such head). v's squared
    /// error grows only with the distance between code vectors, and an object's cells are few, so
    /// whether a cell is red or blue earns little gradient; the AR prior, trained by cross-entropy
    /// on every token, reads its captions within 1,000 steps. The loss adds λ·CE to the v error;
    /// sampling still uses v alone.
    public var tokenLossWeight: Float

    public init(textLength: Int = 32, textVocabularySize: Int, gridHeight: Int, gridWidth: Int, codebookSize: Int,
                latentChannels: Int, width: Int = 192, layers: Int = 6, numHeads: Int = 6, captionDropout: Float = 0.1,
                diffusionSteps: Int = 1000, patchSize: Int = 1, selfCondition: Bool = false, textLayers: Int = 0,
                pooledCaption: Bool = true, captionContext: Bool = false, crossAttention: Bool = false,
                flatCaption: Bool = false, cellEmbedding: Bool = false, tokenLossWeight: Float = 0) {
        self.textLength = textLength
        self.textVocabularySize = textVocabularySize
        self.gridHeight = gridHeight
        self.gridWidth = gridWidth
        self.codebookSize = codebookSize
        self.latentChannels = latentChannels
        self.width = width
        self.layers = layers
        self.numHeads = numHeads
        self.captionDropout = captionDropout
        self.diffusionSteps = diffusionSteps
        self.patchSize = patchSize
        self.selfCondition = selfCondition
        self.textLayers = textLayers
        self.pooledCaption = pooledCaption
        self.captionContext = captionContext
        self.crossAttention = crossAttention
        self.flatCaption = flatCaption
        self.cellEmbedding = cellEmbedding
        self.tokenLossWeight = tokenLossWeight
    }

    /// Reads configs written before patches existed as p = 1, and those written before
    /// self-conditioning, the text encoder or the caption options as without them.
    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        textLength = try c.decode(Int.self, forKey: .textLength)
        textVocabularySize = try c.decode(Int.self, forKey: .textVocabularySize)
        gridHeight = try c.decode(Int.self, forKey: .gridHeight)
        gridWidth = try c.decode(Int.self, forKey: .gridWidth)
        codebookSize = try c.decode(Int.self, forKey: .codebookSize)
        latentChannels = try c.decode(Int.self, forKey: .latentChannels)
        width = try c.decode(Int.self, forKey: .width)
        layers = try c.decode(Int.self, forKey: .layers)
        numHeads = try c.decode(Int.self, forKey: .numHeads)
        captionDropout = try c.decode(Float.self, forKey: .captionDropout)
        diffusionSteps = try c.decode(Int.self, forKey: .diffusionSteps)
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 1
        selfCondition = try c.decodeIfPresent(Bool.self, forKey: .selfCondition) ?? false
        textLayers = try c.decodeIfPresent(Int.self, forKey: .textLayers) ?? 0
        pooledCaption = try c.decodeIfPresent(Bool.self, forKey: .pooledCaption) ?? true
        captionContext = try c.decodeIfPresent(Bool.self, forKey: .captionContext) ?? false
        crossAttention = try c.decodeIfPresent(Bool.self, forKey: .crossAttention) ?? false
        flatCaption = try c.decodeIfPresent(Bool.self, forKey: .flatCaption) ?? false
        cellEmbedding = try c.decodeIfPresent(Bool.self, forKey: .cellEmbedding) ?? false
        tokenLossWeight = try c.decodeIfPresent(Float.self, forKey: .tokenLossWeight) ?? 0
    }

    enum CodingKeys: String, CodingKey {
        case textLength, textVocabularySize, gridHeight, gridWidth, codebookSize, latentChannels, width, layers, numHeads,
             captionDropout, diffusionSteps, patchSize, selfCondition, textLayers, pooledCaption,
             captionContext, crossAttention, flatCaption, cellEmbedding, tokenLossWeight
    }

    /// Writes `selfCondition`, `textLayers`, `pooledCaption`, `captionContext`, `crossAttention`,
    /// `flatCaption`, `cellEmbedding` and `tokenLossWeight` only when they differ from the first priors', so configs
    /// (and checkpoints, which a resume checks by their config's text) from before them read and
    /// compare as before.
    public func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(textLength, forKey: .textLength)
        try c.encode(textVocabularySize, forKey: .textVocabularySize)
        try c.encode(gridHeight, forKey: .gridHeight)
        try c.encode(gridWidth, forKey: .gridWidth)
        try c.encode(codebookSize, forKey: .codebookSize)
        try c.encode(latentChannels, forKey: .latentChannels)
        try c.encode(width, forKey: .width)
        try c.encode(layers, forKey: .layers)
        try c.encode(numHeads, forKey: .numHeads)
        try c.encode(captionDropout, forKey: .captionDropout)
        try c.encode(diffusionSteps, forKey: .diffusionSteps)
        try c.encode(patchSize, forKey: .patchSize)
        if selfCondition { try c.encode(selfCondition, forKey: .selfCondition) }
        if textLayers > 0 { try c.encode(textLayers, forKey: .textLayers) }
        if !pooledCaption { try c.encode(pooledCaption, forKey: .pooledCaption) }
        if captionContext { try c.encode(captionContext, forKey: .captionContext) }
        if crossAttention { try c.encode(crossAttention, forKey: .crossAttention) }
        if flatCaption { try c.encode(flatCaption, forKey: .flatCaption) }
        if cellEmbedding { try c.encode(cellEmbedding, forKey: .cellEmbedding) }
        if tokenLossWeight > 0 { try c.encode(tokenLossWeight, forKey: .tokenLossWeight) }
    }

    public var imageLength: Int { gridHeight * gridWidth }
    /// Patch rows and columns: the latent part of the sequence is patchRows × patchColumns.
    public var patchRows: Int { gridHeight / patchSize }
    public var patchColumns: Int { gridWidth / patchSize }
    /// Values per sequence position: p²·D.
    public var patchValues: Int { patchSize * patchSize * latentChannels }
    /// Text tokens and one pad token per text position.
    public var textClasses: Int { textVocabularySize + textLength }

    public func validate(path: String? = nil) throws {
        func fail(_ problem: String) -> TesseraError { TesseraError("diffusion prior config: \(problem)", path: path) }
        guard (1...512).contains(textLength), (1...1_000_000).contains(textVocabularySize) else {
            throw fail("text length \(textLength) must be 1…512, vocabulary \(textVocabularySize) 1…1,000,000")
        }
        guard (1...128).contains(gridHeight), (1...128).contains(gridWidth), (2...65_536).contains(codebookSize),
              (1...1024).contains(latentChannels) else {
            throw fail("grid \(gridHeight)×\(gridWidth) must be 1…128 a side, codebook 2…65,536, latent channels 1…1,024")
        }
        guard (1...64).contains(layers), (0...64).contains(textLayers), numHeads >= 1, width >= 1, width <= 4096, width % numHeads == 0 else {
            throw fail("width \(width) must divide into \(numHeads) heads; 1…64 layers, 0…64 text layers")
        }
        guard (0...1).contains(captionDropout), (1...100_000).contains(diffusionSteps) else {
            throw fail("caption dropout must be in [0, 1], diffusion steps 1…100,000")
        }
        guard (0...100).contains(tokenLossWeight) else { throw fail("token loss weight \(tokenLossWeight) must be in [0, 100]") }
        guard !(crossAttention && captionContext) else {
            throw fail("the caption is either context in the sequence or reached by cross-attention, not both")
        }
        guard (1...8).contains(patchSize), gridHeight % patchSize == 0, gridWidth % patchSize == 0 else {
            throw fail("patch size \(patchSize) must be 1…8 and divide the grid \(gridHeight)×\(gridWidth)")
        }
    }
}

/// Layer norm without its own weight and bias: adaLN supplies both per item.
struct PlainLayerNorm {
    let ones: Tensor  // (C)
    let zeros: Tensor  // (C)

    init(width: Int) {
        ones = Tensor(shape: [width], values: [Float](repeating: 1, count: width))
        zeros = Tensor(shape: [width])
    }

    func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor { tape.layerNorm(x, weight: ones, bias: zeros) }
}

/// DiT's block with adaLN-Zero:
/// x = x + gate₁ ⊙ attn(modulate(norm(x), shift₁, scale₁)); x = x + gate₂ ⊙ mlp(modulate(norm(x), shift₂, scale₂)).
struct DiTBlock {
    let norm: PlainLayerNorm
    /// SiLU(conditioning) → shift₁, scale₁, gate₁, shift₂, scale₂, gate₂; zero at initialisation.
    let modulation: Linear
    let attention: MultiHeadAttention
    let expand: Linear
    let project: Linear
    /// With cross-attention: its query norm and the attention to the caption's tokens.
    let crossNorm: LayerNorm?
    let crossAttention: MultiHeadAttention?
    let width: Int

    init(_ parameters: ParameterStore, _ name: String, width: Int, numHeads: Int, crossAttention: Bool = false,
         rng: inout RandomGenerator) {
        self.width = width
        norm = PlainLayerNorm(width: width)
        modulation = Linear(parameters, name + ".modulation", in: width, out: 6 * width, std: 0, rng: &rng)
        attention = MultiHeadAttention(name + ".attention", width: width, numHeads: numHeads, parameters: parameters, rng: &rng)
        expand = Linear(parameters, name + ".mlp.expand", in: width, out: 4 * width, rng: &rng)
        project = Linear(parameters, name + ".mlp.project", in: 4 * width, out: width, rng: &rng)
        crossNorm = crossAttention ? LayerNorm(parameters, name + ".cross_norm", width: width, rng: &rng) : nil
        self.crossAttention = crossAttention
            ? MultiHeadAttention(name + ".cross_attention", width: width, numHeads: numHeads, parameters: parameters, rng: &rng)
            : nil
    }

    /// x (B, T, C), conditioning (B, C) already through SiLU, and with cross-attention the
    /// caption's tokens (B, Ttext, C) → (B, T, C).
    func callAsFunction(_ tape: Tape, _ x: Tensor, conditioning: Tensor, caption: Tensor? = nil) -> Tensor {
        let m = modulation(tape, conditioning)  // (B, 6C)
        func part(_ i: Int) -> Tensor { tape.slice(m, axis: 1, i * width..<(i + 1) * width) }  // (B, C)
        let attended = attention(tape, tape.modulate(norm(tape, x), shift: part(0), scale: part(1)), mask: .full)  // (B, T, C)
        var h = tape.add(x, tape.gate(attended, by: part(2)))  // (B, T, C)
        if let crossAttention, let crossNorm, let caption {
            h = tape.add(h, crossAttention(tape, crossNorm(tape, h), context: caption, mask: .full))  // (B, T, C)
        }
        let inner = tape.gelu(expand(tape, tape.modulate(norm(tape, h), shift: part(3), scale: part(4))))  // (B, T, 4C)
        return tape.add(h, tape.gate(project(tape, inner), by: part(5)))
    }
}

public final class DiffusionPrior {
    public let config: DiffusionPriorConfig
    public let parameters: ParameterStore
    public let schedule: CosineSchedule
    /// Per-channel mean and standard deviation of the training latents (D each); the prior
    /// works on (latent − mean) / std. Set by the trainer, stored with the weights.
    public let latentMean: Tensor  // (D)
    public let latentStd: Tensor  // (D)
    /// Rows: text tokens, then one pad per text position.
    let tokenEmbedding: Tensor  // (Vtext + Ttext, C)
    /// Rows: text positions, patch rows, patch columns.
    let positionEmbedding: Tensor  // (Ttext + h/p + w/p, C)
    let latentInput: Linear
    let timeInput: Linear
    let timeOutput: Linear
    /// The caption's mean word embedding, layer-normed (so it starts at the scale of the timestep
    /// embedding, not 0.02's) → a vector added to the timestep embedding; nil without `pooledCaption`.
    let textPool: Linear?
    let captionNorm: PlainLayerNorm
    /// With `flatCaption`: the caption's word embeddings in order, (B, Ttext·C) layer-normed → a
    /// vector added to the conditioning.
    let textFlat: Linear?
    let flatNorm: PlainLayerNorm
    /// With `cellEmbedding`: one entry per patch cell in raster order, (h/p·w/p, C); zero at the start.
    let cellTable: Tensor?
    let blocks: [DiTBlock]
    /// The caption's own encoder (`textLayers` blocks; none by default).
    let textBlocks: [TransformerBlock]
    let finalNorm: PlainLayerNorm
    /// SiLU(conditioning) → shift, scale of the last norm; zero at initialisation.
    let finalModulation: Linear
    /// Zero at initialisation, so the untrained model predicts v = 0.
    let output: Linear
    /// With `tokenLossWeight` > 0: the final states → each cell of the patch's clean-token logits,
    /// (…, p²·K); zero at the start (every code equally likely).
    let tokenOutput: Linear?

    /// Width of the sinusoidal timestep features (DiT's frequency embedding size).
    static let timeFeatureWidth = 256

    public convenience init(config: DiffusionPriorConfig, seed: UInt64) {
        self.init(config: config, seed: seed, parameters: ParameterStore())
    }

    /// A replica for another training worker: the same values (and latent statistics), its own gradients.
    public convenience init(replicaOf other: DiffusionPrior) {
        self.init(config: other.config, seed: 0, parameters: ParameterStore(mirroring: other.parameters),
                  statistics: (other.latentMean, other.latentStd))
    }

    private init(config: DiffusionPriorConfig, seed: UInt64, parameters: ParameterStore,
                 statistics: (Tensor, Tensor)? = nil) {
        self.config = config
        self.parameters = parameters
        schedule = CosineSchedule(steps: config.diffusionSteps)
        let (c, d, values) = (config.width, config.latentChannels, config.patchValues)
        latentMean = statistics?.0 ?? Tensor(shape: [d])
        latentStd = statistics?.1 ?? Tensor(shape: [d], values: [Float](repeating: 1, count: d))
        var rng = RandomGenerator(seed: seed)
        tokenEmbedding = parameters.add("diffusion.token_embedding", shape: [config.textClasses, c],
                                        .normal(std: 0.02), decays: false, rng: &rng)
        positionEmbedding = parameters.add("diffusion.position_embedding",
                                           shape: [config.textLength + config.patchRows + config.patchColumns, c],
                                           .normal(std: 0.02), decays: false, rng: &rng)
        Self.initialiseGridPositions(positionEmbedding, config: config)
        latentInput = Linear(parameters, "diffusion.latent_input", in: config.selfCondition ? 2 * values : values, out: c,
                             rng: &rng)
        timeInput = Linear(parameters, "diffusion.time.input", in: Self.timeFeatureWidth, out: c, rng: &rng)
        timeOutput = Linear(parameters, "diffusion.time.output", in: c, out: c, rng: &rng)
        textPool = config.pooledCaption ? Linear(parameters, "diffusion.text_pool", in: c, out: c, rng: &rng) : nil
        captionNorm = PlainLayerNorm(width: c)
        blocks = (0..<config.layers).map { i in
            DiTBlock(parameters, "diffusion.block\(i)", width: c, numHeads: config.numHeads,
                     crossAttention: config.crossAttention, rng: &rng)
        }
        finalNorm = PlainLayerNorm(width: c)
        finalModulation = Linear(parameters, "diffusion.final_modulation", in: c, out: 2 * c, std: 0, rng: &rng)
        output = Linear(parameters, "diffusion.output", in: c, out: values, std: 0, rng: &rng)
        // Last, so a prior without them draws every other starting value as before.
        textBlocks = (0..<config.textLayers).map { i in
            TransformerBlock(parameters, "diffusion.text_block\(i)", width: c, numHeads: config.numHeads,
                             layers: config.textLayers, rng: &rng)
        }
        // Beside the pooled mean it starts at zero; alone, at the mean's starting scale (0.02 over
        // C inputs, so 0.02/√Ttext over Ttext·C).
        textFlat = config.flatCaption
            ? Linear(parameters, "diffusion.text_flat", in: config.textLength * c, out: c,
                     std: config.pooledCaption ? 0 : 0.02 / Float(config.textLength).squareRoot(), rng: &rng)
            : nil
        flatNorm = PlainLayerNorm(width: config.textLength * c)
        cellTable = config.cellEmbedding
            ? parameters.add("diffusion.cell_embedding", shape: [config.patchRows * config.patchColumns, c], .zeros,
                             decays: false, rng: &rng)
            : nil
        tokenOutput = config.tokenLossWeight > 0
            ? Linear(parameters, "diffusion.token_output", in: c, out: config.patchSize * config.patchSize * config.codebookSize,
                     std: 0, rng: &rng)
            : nil
    }

    /// DiT's 2-D sin-cos position embedding as the starting value of the patch rows' and columns'
    /// entries (they stay trainable): a row's entry fills the first C/2 channels, a column's the
    /// last C/2, so their sum is DiT's embedding. At unit scale it stands out against the noisy
    /// latent's projection; GPT-2's 0.02, which the text positions keep, left a patch at high
    /// noise barely knowing where it is.
    static func initialiseGridPositions(_ table: Tensor, config: DiffusionPriorConfig) {
        let (c, half) = (config.width, config.width / 2)
        let frequencies = half / 2
        func fill(entry: Int, position: Int, channels: Int) {
            (table.data + entry * c).update(repeating: 0, count: c)
            let row = table.data + entry * c + channels
            for i in 0..<frequencies {
                let angle = Double(position) * pow(10_000, -Double(i) / Double(frequencies))
                row[i] = Float(sin(angle))
                row[frequencies + i] = Float(cos(angle))
            }
        }
        for r in 0..<config.patchRows { fill(entry: config.textLength + r, position: r, channels: 0) }
        for k in 0..<config.patchColumns { fill(entry: config.textLength + config.patchRows + k, position: k, channels: half) }
    }

    /// The statistics' names in model files (not trained; not in `parameters`).
    public var buffers: [(name: String, tensor: Tensor)] {
        [("diffusion.latent_mean", latentMean), ("diffusion.latent_std", latentStd)]
    }

    // MARK: Text and latents

    /// A caption's BPE ids as Ttext text tokens: cut to Ttext, then each free position's own pad.
    public func textTokens(_ ids: [Int32]) -> [Int32] {
        paddedText(ids, textLength: config.textLength, vocabularySize: config.textVocabularySize)
    }

    /// The text tokens of the empty caption (all pads), which guidance conditions on.
    public var emptyText: [Int32] { textTokens([]) }

    /// Code vectors (…, D) → normalised latents, and back.
    public func normalize(_ latent: [Float]) -> [Float] {
        let d = config.latentChannels
        return latent.indices.map { (latent[$0] - latentMean.data[$0 % d]) / latentStd.data[$0 % d] }
    }

    public func denormalize(_ latent: [Float]) -> [Float] {
        let d = config.latentChannels
        return latent.indices.map { latent[$0] * latentStd.data[$0 % d] + latentMean.data[$0 % d] }
    }

    /// Sets the statistics from code vectors (N·D values, channels last).
    public func setStatistics(from latents: [Float]) {
        let d = config.latentChannels, rows = latents.count / d
        precondition(rows > 0 && latents.count == rows * d, "setStatistics: \(latents.count) values for D = \(d)")
        for c in 0..<d {
            var sum = 0.0, squares = 0.0
            for r in 0..<rows {
                let v = Double(latents[r * d + c])
                sum += v
                squares += v * v
            }
            let mean = sum / Double(rows)
            latentMean.data[c] = Float(mean)
            latentStd.data[c] = Float(max(squares / Double(rows) - mean * mean, 1e-8).squareRoot())
        }
    }

    // MARK: The denoiser

    /// DiT's sinusoidal features of each timestep: [cos(t·f_i), sin(t·f_i)], f_i = 10000^(−i/half).
    static func timeFeatures(_ timesteps: [Int]) -> Tensor {
        let half = timeFeatureWidth / 2
        let features = Tensor(shape: [timesteps.count, timeFeatureWidth])  // (B, 256)
        for (b, t) in timesteps.enumerated() {
            for i in 0..<half {
                let angle = Double(t) * exp(-log(10_000) * Double(i) / Double(half))
                features.data[b * timeFeatureWidth + i] = Float(cos(angle))
                features.data[b * timeFeatureWidth + half + i] = Float(sin(angle))
            }
        }
        return features
    }

    /// v predicted for noisy normalised latents in sequence layout, (B, h/p·w/p, p²·D) from
    /// `patchify`, at `timesteps` (B) given `text` (B·Ttext tokens from `textTokens`) → the same
    /// layout. With p = 1 the sequence layout is the grid's own, (B, h·w, D). A self-conditioned
    /// prior also takes `estimate`, its previous prediction of the clean latents in the same
    /// layout (nil: none yet, zeros).
    public func velocity(_ tape: Tape, noisy: Tensor, estimate: [Float]? = nil, timesteps: [Int], text: [Int32]) -> Tensor {
        output(tape, finalStates(tape, noisy: noisy, estimate: estimate, timesteps: timesteps, text: text))
    }

    /// The latent positions' states under the last adaLN, (B, n, C): what the v head (and the
    /// token head) read; arguments as `velocity`'s.
    func finalStates(_ tape: Tape, noisy: Tensor, estimate: [Float]?, timesteps: [Int], text: [Int32]) -> Tensor {
        let (t, n, batch) = (config.textLength, config.patchRows * config.patchColumns, timesteps.count)
        let columnCount = config.patchColumns
        precondition(noisy.shape == [batch, n, config.patchValues] && text.count == batch * t,
                     "DiffusionPrior: latents \(noisy.shape), \(text.count) text tokens for \(batch) items")
        precondition(estimate == nil || (config.selfCondition && estimate!.count == noisy.count),
                     "DiffusionPrior: \(estimate?.count ?? 0) estimate values for \(noisy.count) latent values")
        let textPositions = (0..<batch).flatMap { _ in (0..<t).map { Int32($0) } }
        let rows = (0..<batch).flatMap { _ in (0..<n).map { Int32(t + $0 / columnCount) } }
        let columns = (0..<batch).flatMap { _ in (0..<n).map { Int32(t + config.patchRows + $0 % columnCount) } }
        let words = tape.embedding(tokenEmbedding, ids: text, idShape: [batch, t])  // (B, Ttext, C)
        var textPart = tape.add(words, tape.embedding(positionEmbedding, ids: textPositions, idShape: [batch, t]))
        for block in textBlocks { textPart = block(tape, textPart, mask: .full) }  // (B, Ttext, C)
        var latentPart = tape.add(latentInput(tape, config.selfCondition ? withEstimate(noisy, estimate) : noisy),
                                  tape.embedding(positionEmbedding, ids: rows, idShape: [batch, n]))  // (B, n, C)
        latentPart = tape.add(latentPart, tape.embedding(positionEmbedding, ids: columns, idShape: [batch, n]))
        if let cellTable {
            let cells = (0..<batch).flatMap { _ in (0..<n).map { Int32($0) } }
            latentPart = tape.add(latentPart, tape.embedding(cellTable, ids: cells, idShape: [batch, n]))
        }
        // The sequence: the caption's tokens and the latent positions, or with cross-attention the latents alone.
        var h = config.crossAttention ? latentPart : tape.concatenate([textPart, latentPart], axis: 1)  // (B, Ttext + n, C)
        let offset = config.crossAttention ? 0 : t  // where the latent positions start
        let time = timeOutput(tape, tape.silu(timeInput(tape, Self.timeFeatures(timesteps))))  // (B, C)
        var conditioning = time  // (B, C)
        if let textPool {
            // Row b averages item b's caption words (not its pads); an empty caption pools to zero.
            let averaging = Tensor(shape: [batch, batch * t])
            for b in 0..<batch {
                let own = (0..<t).filter { text[b * t + $0] < Int32(config.textVocabularySize) }
                for p in own { averaging.data[b * (batch * t) + b * t + p] = 1 / Float(own.count) }
            }
            let caption = tape.matmul(averaging, tape.reshape(words, [batch * t, config.width]))  // (B, C)
            conditioning = tape.add(time, textPool(tape, captionNorm(tape, caption)))
        }
        if let textFlat {
            let flat = tape.reshape(words, [batch, t * config.width])  // (B, Ttext·C)
            conditioning = tape.add(conditioning, textFlat(tape, flatNorm(tape, flat)))
        }
        conditioning = tape.silu(conditioning)
        for block in blocks {
            h = block(tape, h, conditioning: conditioning, caption: config.crossAttention ? textPart : nil)
            if config.captionContext { h = tape.concatenate([textPart, tape.slice(h, axis: 1, t..<(t + n))], axis: 1) }
        }
        let latentHidden = offset == 0 ? h : tape.slice(h, axis: 1, offset..<(offset + n))  // (B, n, C)
        let m = finalModulation(tape, conditioning)  // (B, 2C)
        let c = config.width
        return tape.modulate(finalNorm(tape, latentHidden), shift: tape.slice(m, axis: 1, 0..<c),
                             scale: tape.slice(m, axis: 1, c..<(2 * c)))  // (B, n, C)
    }

    /// Each position's noisy values followed by its estimate's (or zeros): the self-conditioned
    /// input, (B, n, 2·p²·D).
    func withEstimate(_ noisy: Tensor, _ estimate: [Float]?) -> Tensor {
        let (values, positions) = (config.patchValues, noisy.count / config.patchValues)
        let joined = Tensor(shape: Array(noisy.shape.dropLast()) + [2 * values])
        estimate?.withUnsafeBufferPointer { e in
            for p in 0..<positions { (joined.data + (2 * p + 1) * values).update(from: e.baseAddress! + p * values, count: values) }
        }
        for p in 0..<positions { (joined.data + 2 * p * values).update(from: noisy.data + p * values, count: values) }
        return joined
    }

    /// Whole latents in grid layout (items × h·w·D, channels last) → sequence layout: patch by
    /// patch in raster order, within a patch its p×p positions in raster order, D values each.
    public func patchify(_ latents: [Float]) -> [Float] { repatch(latents, channels: config.latentChannels, toSequence: true) }

    /// The inverse of `patchify`.
    public func unpatchify(_ latents: [Float]) -> [Float] { repatch(latents, channels: config.latentChannels, toSequence: false) }

    /// One value per cell of whole grids (items × h·w, token ids or weights), in the order
    /// `patchify` puts the cells.
    public func patchifyCells<Value>(_ grids: [Value]) -> [Value] { repatch(grids, channels: 1, toSequence: true) }

    private func repatch<Value>(_ latents: [Value], channels d: Int, toSequence: Bool) -> [Value] {
        let (p, w) = (config.patchSize, config.gridWidth)
        guard p > 1 else { return latents }
        let item = config.imageLength * d
        precondition(latents.count % item == 0, "repatch: \(latents.count) values are not whole latents of \(item)")
        var result = latents
        var sequence = 0
        for start in stride(from: 0, to: latents.count, by: item) {
            for patchRow in 0..<config.patchRows {
                for patchColumn in 0..<config.patchColumns {
                    for dy in 0..<p {
                        for dx in 0..<p {
                            let grid = start + ((patchRow * p + dy) * w + patchColumn * p + dx) * d
                            for c in 0..<d {
                                if toSequence { result[sequence] = latents[grid + c] } else { result[grid + c] = latents[sequence] }
                                sequence += 1
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// What one batch costs: the tensor to differentiate, and its parts.
    public struct Loss {
        /// The v error, plus λ times the token cross-entropy when tokens were given.
        public let total: Tensor
        /// The (weighted) mean squared error of v.
        public let velocity: Float
        /// The (weighted) mean cross-entropy of the clean tokens, nats per cell; 0 without them.
        public let tokens: Float
    }

    /// The mean squared error of v for clean normalised latents (B·h·w·D, grid layout) noised
    /// with `noise` to `timesteps`. A self-conditioned prior first predicts the clean latents of
    /// the items flagged in `selfConditioned` (a pass whose gradient is not taken, as Chen et al.
    /// train) and sees that estimate in the pass that is scored; the other items see zeros.
    /// With `weights` (one per latent value, same layout as `clean`) the error is the weighted
    /// mean Σ w·e² / Σ w. With `tokens` (the clean grids' ids, B·h·w) and a token head, λ times
    /// the cross-entropy of those ids (weighted alike, by each cell's first value's weight) is
    /// added.
    public func loss(_ tape: Tape, clean: [Float], noise: [Float], timesteps: [Int], text: [Int32],
                     selfConditioned: [Bool] = [], weights: [Float]? = nil, tokens: [Int32]? = nil) -> Loss {
        let (size, batch) = (config.imageLength * config.latentChannels, timesteps.count)
        precondition(clean.count == batch * size && noise.count == clean.count,
                     "DiffusionPrior.loss: \(clean.count) latent values for \(batch) items")
        precondition(tokens == nil || tokens!.count == batch * config.imageLength,
                     "DiffusionPrior.loss: \(tokens!.count) tokens for \(batch) grids")
        let (clean, noise) = (patchify(clean), patchify(noise))  // noising is per value: either layout serves
        var noisy = [Float](), target = [Float]()
        for (b, step) in timesteps.enumerated() {
            let item = b * size..<(b + 1) * size
            noisy += schedule.noised(Array(clean[item]), noise: Array(noise[item]), at: step)
            target += schedule.velocity(clean: Array(clean[item]), noise: Array(noise[item]), at: step)
        }
        let shape = [batch, config.patchRows * config.patchColumns, config.patchValues]
        var estimate: [Float]?
        if config.selfCondition {
            estimate = [Float](repeating: 0, count: noisy.count)
            let chosen = selfConditioned.indices.filter { selfConditioned[$0] }
            if !chosen.isEmpty {
                let first = Tape()
                defer { first.reset() }
                let chosenNoisy = chosen.flatMap { noisy[$0 * size..<($0 + 1) * size] }
                let v = velocity(first, noisy: Tensor(shape: [chosen.count] + shape.dropFirst(), values: chosenNoisy),
                                 timesteps: chosen.map { timesteps[$0] },
                                 text: chosen.flatMap { text[$0 * config.textLength..<($0 + 1) * config.textLength] }).values
                for (j, b) in chosen.enumerated() {
                    let guess = schedule.clean(noisy: Array(chosenNoisy[j * size..<(j + 1) * size]),
                                               velocity: Array(v[j * size..<(j + 1) * size]), at: timesteps[b])
                    estimate!.replaceSubrange(b * size..<(b + 1) * size, with: guess)
                }
            }
        }
        let states = finalStates(tape, noisy: Tensor(shape: shape, values: noisy), estimate: estimate,
                                 timesteps: timesteps, text: text)  // (B, n, C)
        let error = tape.sub(output(tape, states), Tensor(shape: shape, values: target))  // (B, n, p²·D)
        let squared = tape.mul(error, error)
        var total: Tensor
        if let weights {
            precondition(weights.count == clean.count, "DiffusionPrior.loss: \(weights.count) weights for \(clean.count) latent values")
            let weighted = tape.sum(tape.mul(squared, Tensor(shape: shape, values: patchify(weights))))
            total = tape.scale(weighted, by: 1 / max(weights.reduce(0, +), .leastNormalMagnitude))
        } else {
            total = tape.mean(squared)
        }
        let velocityError = total.item
        guard let tokens, let tokenOutput else { return Loss(total: total, velocity: velocityError, tokens: 0) }
        let cells = batch * config.imageLength
        let logits = tape.reshape(tokenOutput(tape, states), [cells, config.codebookSize])  // (B·h·w, K), patch order
        let cellWeights = weights.map { w in stride(from: 0, to: w.count, by: config.latentChannels).map { w[$0] } }
            ?? [Float](repeating: 1, count: cells)
        let norm = config.tokenLossWeight / max(cellWeights.reduce(0, +), .leastNormalMagnitude)
        let crossEntropy = tape.crossEntropy(logits, targets: patchifyCells(tokens),
                                             weights: patchifyCells(cellWeights).map { $0 * norm })
        total = tape.add(total, crossEntropy)
        return Loss(total: total, velocity: velocityError, tokens: crossEntropy.item / config.tokenLossWeight)
    }
}
