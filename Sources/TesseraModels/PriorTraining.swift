// What the trainers on (caption, picture) pairs share — the two priors' and the scorer's: their
// options, the (captions, token grid) examples the priors draw from, how a caption is drawn
// (and dropped for classifier-free guidance), and their checkpoints.
import TesseraTensor

public struct PriorTrainingOptions: Codable, Equatable, Sendable {
    public var steps = 4000
    public var batchSize = 32
    public var learningRate: Float = 1e-3
    public var warmupSteps = 200
    public var seed: UInt64 = 1
    /// Share of draws that take an example's first caption (an emoji's name) rather than any
    /// of its captions (its keywords, which many pictures share).
    public var firstCaptionRate: Float = 0.5
    /// Diffusion prior only: s > 1 draws training noise levels towards more noise, u ↦
    /// s·u / (1 + (s − 1)·u) for u uniform in [0, 1) (SD3's shift, Esser et al. 2024), so more
    /// of the loss falls where the caption alone decides the picture; 1 draws them uniformly.
    public var timestepShift: Float = 1
    /// Diffusion prior only: the decay d of an exponential moving average of the weights, kept
    /// beside them and saved as the prior (Polyak averaging; DiT samples from such an average).
    /// 0 keeps none.
    public var weightAverageDecay: Float = 0
    /// Diffusion prior only: the weight, in the v error, of a latent position on or next to
    /// something besides the background (`TokenizedExample.foreground`); the others weigh 1
    /// and the error is divided by the weights' sum. Objects cover a few of a grid's positions,
    /// so unweighted they earn little of the gradient; 1 weighs all positions alike.
    public var objectWeight: Float = 1
    /// Diffusion prior only: train on grids whose background positions (off the foreground)
    /// hold one code per background colour and place (`BackgroundCodes`), not the many codes
    /// the tokenizer spells plain background with.
    public var plainBackground = false

    public init() {}

    /// Reads options saved before a field existed with that field's default.
    public init(from decoder: any Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = PriorTrainingOptions()
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? defaults.steps
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? defaults.batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? defaults.learningRate
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? defaults.warmupSteps
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? defaults.seed
        firstCaptionRate = try c.decodeIfPresent(Float.self, forKey: .firstCaptionRate) ?? defaults.firstCaptionRate
        timestepShift = try c.decodeIfPresent(Float.self, forKey: .timestepShift) ?? defaults.timestepShift
        weightAverageDecay = try c.decodeIfPresent(Float.self, forKey: .weightAverageDecay) ?? defaults.weightAverageDecay
        objectWeight = try c.decodeIfPresent(Float.self, forKey: .objectWeight) ?? defaults.objectWeight
        plainBackground = try c.decodeIfPresent(Bool.self, forKey: .plainBackground) ?? defaults.plainBackground
    }

    /// A training noise level in 1…T: uniform when `timestepShift` is 1, otherwise shifted.
    public func drawTimestep(steps: Int, rng: inout RandomGenerator) -> Int {
        guard timestepShift != 1 else { return 1 + rng.int(below: steps) }
        let u = Double(rng.uniform()), s = Double(timestepShift)
        return min(steps, 1 + Int(s * u / (1 + (s - 1) * u) * Double(steps)))
    }

    /// One of a picture's captions (the first at `firstCaptionRate`, otherwise any), or the
    /// empty caption at the rate `dropout`.
    public func drawCaption(from captions: [[Int32]], dropout: Float, rng: inout RandomGenerator) -> [Int32] {
        let first = captions.count == 1 || rng.uniform() < firstCaptionRate
        let caption = captions[first ? 0 : rng.int(below: captions.count)]
        return rng.uniform() < dropout ? [] : caption
    }
}

/// One training example: a picture's token grid, the BPE ids of each of its captions and,
/// when known, which grid positions show something other than the background
/// (`foregroundPositions`) and the background's colour (`backgroundKey`).
public struct TokenizedExample: Sendable {
    public var captions: [[Int32]]
    public var grid: [Int32]
    public var foreground: [Bool]?
    public var background: Int32?

    public init(captions: [[Int32]], grid: [Int32], foreground: [Bool]? = nil, background: Int32? = nil) {
        self.captions = captions
        self.grid = grid
        self.foreground = foreground
        self.background = background
    }
}

/// The most frequent colour of a picture's border pixels, from its (3, size, size) pixels.
public func backgroundColour(planar: [Float], size: Int) -> [Float] {
    let plane = size * size
    let border = (0..<size).flatMap { (i: Int) -> [Int] in [i, (size - 1) * size + i, i * size, i * size + size - 1] }
    var counts: [[Float]: Int] = [:]
    for p in border { counts[(0..<3).map { planar[$0 * plane + p] }, default: 0] += 1 }
    return counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key.lexicographicallyPrecedes($1.key)) }!.key
}

/// A colour in [−1, 1] as one number: its 8-bit red, green and blue packed as 0xRRGGBB.
public func backgroundKey(_ colour: [Float]) -> Int32 {
    colour.prefix(3).reduce(Int32(0)) { $0 << 8 | Int32(((min(max($1, -1), 1) + 1) * 127.5).rounded()) }
}

/// For each background colour and grid position, the code the training grids hold there most
/// often off their foreground. The tokenizer spells plain background with many codes (over 40,000
/// Shapes pictures, 203 on white, with 4.8 bits of entropy at a given place), all drawn alike;
/// a prior trained on grids with these codes there instead need not model that choice, and its
/// loss falls on the objects. Decoded, such a grid draws the same picture (20 `test-novel`
/// pictures: 41.4 dB PSNR so changed, 42.0 as tokenized).
public struct BackgroundCodes: Sendable {
    /// Background key → one code per grid position.
    public let codes: [Int32: [Int32]]

    /// Counts the examples that know their foreground and background.
    public init(_ examples: [TokenizedExample]) {
        var counts: [Int32: [[Int32: Int]]] = [:]
        for example in examples {
            guard let foreground = example.foreground, let key = example.background else { continue }
            var table = counts[key] ?? Array(repeating: [:], count: example.grid.count)
            for (position, code) in example.grid.enumerated() where !foreground[position] { table[position][code, default: 0] += 1 }
            counts[key] = table
        }
        codes = counts.mapValues { table in
            table.map { place in place.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key ?? -1 }
        }
    }

    /// The example with its background positions holding the table's codes (where the table has
    /// one for its colour and place; everything else as it was).
    public func plain(_ example: TokenizedExample) -> TokenizedExample {
        guard let foreground = example.foreground, let key = example.background, let table = codes[key],
              table.count == example.grid.count else { return example }
        var result = example
        for position in result.grid.indices where !foreground[position] && table[position] >= 0 {
            result.grid[position] = table[position]
        }
        return result
    }
}

/// Which positions of a picture's `grid`×`grid` token grid show something besides the
/// background, from its (3, size, size) pixels in [−1, 1]. The background is the most frequent
/// colour of the border pixels; a pixel differing from it by more than `tolerance` in some
/// channel is foreground; a position is foreground when its own patch or a neighbouring one
/// holds such a pixel (a code sees past its own patch).
public func foregroundPositions(planar: [Float], size: Int, grid: Int, tolerance: Float = 0.1) -> [Bool] {
    precondition(planar.count == 3 * size * size && grid > 0 && size % grid == 0,
                 "foregroundPositions: \(planar.count) values for a \(size)-pixel picture and a \(grid)-wide grid")
    let plane = size * size, patch = size / grid
    let background = backgroundColour(planar: planar, size: size)
    var marked = [Bool](repeating: false, count: grid * grid)
    for p in 0..<plane where (0..<3).contains(where: { abs(planar[$0 * plane + p] - background[$0]) > tolerance }) {
        marked[(p / size / patch) * grid + (p % size) / patch] = true
    }
    return (0..<grid * grid).map { position in
        let (row, column) = (position / grid, position % grid)
        return (max(0, row - 1)...min(grid - 1, row + 1)).contains { r in
            (max(0, column - 1)...min(grid - 1, column + 1)).contains { marked[r * grid + $0] }
        }
    }
}


/// A caption's BPE ids as a prior's `textLength` text tokens: cut to that length, then each free
/// position's own pad token (id `vocabularySize + position`, DALL-E's trick), so the model
/// always knows where the caption ends. The empty caption, all pads, is what guidance
/// conditions on.
func paddedText(_ ids: [Int32], textLength: Int, vocabularySize: Int) -> [Int32] {
    (0..<textLength).map { p in p < ids.count ? ids[p] : Int32(vocabularySize + p) }
}

/// Checkpoints of the pair trainers: the optimiser's state, `buffers`, step and generator, with
/// the part's config and options under `tessera.PART.config` and `tessera.PART.training` — a
/// resume checks the first and the CLI reads both back.
enum PairCheckpoint {
    static func save<Config: Encodable>(to path: String, part: String, config: Config, options: PriorTrainingOptions,
                                        optimizer: AdamW, buffers: [(name: String, tensor: Tensor)] = [],
                                        step: Int, rng: RandomGenerator, metadata: [String: String]) throws {
        var metadata = metadata
        metadata["tessera.\(part).config"] = jsonText(config)
        metadata["tessera.\(part).training"] = jsonText(options)
        try Checkpoint.save(to: path, optimizers: [optimizer], buffers: buffers,
                            state: TrainingState(step: step, rng: rng, metadata: metadata))
    }

    /// Restores into `optimizer` and `buffers` after checking that the checkpoint was trained
    /// with `config` (`label` names the part in the error).
    static func restore<Config: Encodable>(from path: String, part: String, label: String, config: Config, optimizer: AdamW,
                                           buffers: [(name: String, tensor: Tensor)] = []) throws -> TrainingState {
        let file = try SafetensorsFile(path: path)
        guard file.metadata["tessera.\(part).config"] == jsonText(config) else {
            throw TesseraError("this checkpoint was trained with another \(label) config", path: path)
        }
        return try Checkpoint.load(from: path, into: [optimizer], buffers: buffers)
    }
}
