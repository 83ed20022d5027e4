// The autoencoder's configuration: one Codable value, stored in model.json and in the weights
// file's metadata, checked before any layer is built.
import Foundation
import TesseraTensor

public enum QuantizerKind: String, Codable, Sendable, CaseIterable {
    /// Nearest-code vector quantization over l2-normalised codes with EMA updates (VQ-VAE / ViT-VQGAN).
    case vq
    /// DALL-E's Gumbel-softmax relaxation over K logits per position.
    case gumbel
    /// Finite scalar quantization: each of D channels rounded to a few levels (Mentzer et al. 2023).
    case fsq
}

/// What the decoder's last layer paints.
public enum DecoderOutput: String, Codable, Sendable, CaseIterable {
    /// The picture's three channels directly.
    case rgb
    /// A foreground colour, a background colour and one coverage channel α between them:
    /// picture = background + α·(foreground − background). Coverage is one map for all three
    /// channels, so the shape of an edge is drawn apart from its colours.
    case alpha
}

/// How the encoder's and decoder's conv features are normalised.
public enum ConvNorm: String, Codable, Sendable, CaseIterable {
    /// Group norm: statistics over groups of channels and the whole picture (Wu & He 2018).
    case group
    /// Layer norm over the channels of each position alone: a code depends only on the pixels
    /// in its receptive field, never on the rest of the picture.
    case position
}

public struct AutoencoderConfig: Codable, Equatable, Sendable {
    /// Pictures are imageSize × imageSize RGB.
    public var imageSize: Int
    /// Channels at each resolution, full resolution first; each further level halves the
    /// picture, so the grid is imageSize / 2^(levels − 1) on a side.
    public var channels: [Int]
    /// Residual blocks at each level of the encoder and of the decoder.
    public var encoderBlocks: [Int]
    public var decoderBlocks: [Int]
    /// The decoder's channels per level when they differ from the encoder's (nil: the same).
    /// A wider decoder can be trained later on a trained encoder's fixed tokens.
    public var decoderChannels: [Int]?
    /// The decoder's last layer (nil: rgb).
    public var decoderOutput: DecoderOutput?
    /// The feature norm (nil: group).
    public var norm: ConvNorm?
    /// Group-norm groups; must divide every channel count.
    public var groups: Int
    public var quantizer: QuantizerKind
    /// K, the number of codes (the image vocabulary).
    public var codebookSize: Int
    /// D, the dimension of a code: the decoder's input channels.
    public var codeDimension: Int
    /// VQ: weight of ‖z − sg(e)‖², the EMA decay of the codebook, and the EMA assignments per
    /// batch below which a code counts as dead and is restarted from an encoder output.
    public var commitmentWeight: Float
    public var emaDecay: Float
    public var restartThreshold: Float
    /// Gumbel: weight of KL(q ‖ uniform), and the temperature annealed from start to end.
    public var klWeight: Float
    public var temperatureStart: Float
    public var temperatureEnd: Float
    /// FSQ: the levels of each channel (nil for the other quantizers); D is their count and K
    /// their product.
    public var levels: [Int]?

    public init(imageSize: Int = 64, channels: [Int] = [32, 64, 64], encoderBlocks: [Int] = [0, 1, 1],
                decoderBlocks: [Int] = [0, 1, 2], groups: Int = 8, quantizer: QuantizerKind = .vq,
                codebookSize: Int = 512, codeDimension: Int = 16, commitmentWeight: Float = 0.25,
                emaDecay: Float = 0.99, restartThreshold: Float = 0.03, klWeight: Float = 1e-3,
                temperatureStart: Float = 1, temperatureEnd: Float = 1.0 / 16, decoderChannels: [Int]? = nil,
                levels: [Int]? = nil, decoderOutput: DecoderOutput? = nil, norm: ConvNorm? = nil) {
        self.imageSize = imageSize
        self.channels = channels
        self.encoderBlocks = encoderBlocks
        self.decoderBlocks = decoderBlocks
        self.decoderChannels = decoderChannels
        self.groups = groups
        self.quantizer = quantizer
        self.codebookSize = codebookSize
        self.codeDimension = codeDimension
        self.commitmentWeight = commitmentWeight
        self.emaDecay = emaDecay
        self.restartThreshold = restartThreshold
        self.klWeight = klWeight
        self.temperatureStart = temperatureStart
        self.temperatureEnd = temperatureEnd
        self.levels = levels
        self.decoderOutput = decoderOutput
        self.norm = norm
    }

    /// An FSQ config's levels with K and D set from them.
    public func withLevels(_ levels: [Int]) -> AutoencoderConfig {
        var config = self
        config.quantizer = .fsq
        config.levels = levels
        config.codeDimension = levels.count
        config.codebookSize = levels.reduce(1) { $0 &* $1 }
        return config
    }

    /// The feature norm of every conv block.
    public var featureNorm: ConvNorm { norm ?? .group }

    /// The decoder's channels per level, full resolution first.
    public var decoderWidths: [Int] { decoderChannels ?? channels }

    /// How many pixels one grid cell covers on a side.
    public var downsampling: Int { 1 << (channels.count - 1) }
    /// h = w, the token grid's side.
    public var gridSize: Int { imageSize / downsampling }

    /// Throws when the numbers cannot make a model (a config read from a file may be anything).
    public func validate(path: String? = nil) throws {
        func fail(_ problem: String) -> TesseraError { TesseraError("autoencoder config: \(problem)", path: path) }
        guard (1...6).contains(channels.count) else { throw fail("needs 1 to 6 levels of channels, has \(channels.count)") }
        guard encoderBlocks.count == channels.count && decoderBlocks.count == channels.count else {
            throw fail("encoderBlocks and decoderBlocks need one count per level (\(channels.count))")
        }
        guard (encoderBlocks + decoderBlocks).allSatisfy({ (0...8).contains($0) }) else { throw fail("0 to 8 blocks per level") }
        guard decoderWidths.count == channels.count else {
            throw fail("decoderChannels need one count per level (\(channels.count))")
        }
        guard groups >= 1, (channels + decoderWidths).allSatisfy({ (1...1024).contains($0) && $0 % groups == 0 }) else {
            throw fail("channels \(channels) and decoder channels \(decoderWidths) must be 1…1024 and divisible by groups \(groups)")
        }
        guard (8...512).contains(imageSize), imageSize % downsampling == 0 else {
            throw fail("image size \(imageSize) must be 8…512 and divisible by \(downsampling)")
        }
        guard (2...65_536).contains(codebookSize) else { throw fail("codebook size \(codebookSize) must be 2…65,536") }
        guard (1...1024).contains(codeDimension) else { throw fail("code dimension \(codeDimension) must be 1…1024") }
        guard emaDecay > 0 && emaDecay < 1, commitmentWeight >= 0, restartThreshold >= 0, klWeight >= 0,
              temperatureStart > 0, temperatureEnd > 0 else {
            throw fail("weights must be ≥ 0, the EMA decay in (0, 1), temperatures > 0")
        }
        if quantizer == .fsq {
            guard let levels, !levels.isEmpty, levels.allSatisfy({ (2...256).contains($0) }) else {
                throw fail("the fsq quantizer needs levels, each 2…256")
            }
            guard levels.count == codeDimension, levels.reduce(1, { $0 &* $1 }) == codebookSize else {
                throw fail("fsq levels \(levels) give \(levels.count) dimensions and their product in codes, "
                           + "not \(codeDimension) and \(codebookSize)")
            }
        } else if levels != nil {
            throw fail("levels belong to the fsq quantizer only")
        }
    }

    public func json() -> String { jsonText(self) }

    public static func decode(json: String, path: String) throws -> AutoencoderConfig {
        do {
            let config = try JSONDecoder().decode(AutoencoderConfig.self, from: Data(json.utf8))
            try config.validate(path: path)
            return config
        } catch let error as TesseraError {
            throw error
        } catch {
            throw TesseraError("autoencoder config is not valid JSON of the expected fields (\(describe(error)))", path: path)
        }
    }
}
