// The discrete autoencoder: a conv encoder with stride-2 downsampling and residual blocks, a
// quantizer, and a conv decoder with nearest upsampling + conv and residual blocks (the VQGAN
// layout, Esser et al. 2021, without attention). Pictures are (B, 3, H, W) in [−1, 1].
import TesseraData
import TesseraImage
import TesseraTensor

struct Encoder {
    let input: Conv2d
    let blocks: [[ResidualBlock]]  // per level
    let downsamples: [Conv2d]  // between levels
    let outputNorm: FeatureNorm
    let output: Conv2d

    init(_ p: ParameterStore, config: AutoencoderConfig, headChannels: Int, rng: inout RandomGenerator) {
        let c = config.channels, groups = config.groups, norm = config.featureNorm
        input = Conv2d(p, "encoder.input", in: 3, out: c[0], kernel: 3, rng: &rng)
        var blocks: [[ResidualBlock]] = [], downsamples: [Conv2d] = []
        for level in c.indices {
            blocks.append((0..<config.encoderBlocks[level]).map { i in
                ResidualBlock(p, "encoder.level\(level).block\(i)", channels: c[level], norm: norm, groups: groups,
                              rng: &rng)
            })
            if level + 1 < c.count {
                downsamples.append(Conv2d(p, "encoder.level\(level).downsample", in: c[level], out: c[level + 1],
                                          kernel: 3, stride: 2, padding: 1, rng: &rng))
            }
        }
        self.blocks = blocks
        self.downsamples = downsamples
        outputNorm = FeatureNorm(p, "encoder.output_norm", channels: c[c.count - 1], kind: norm, groups: groups, rng: &rng)
        output = Conv2d(p, "encoder.output", in: c[c.count - 1], out: headChannels, kernel: 1, rng: &rng)
    }

    /// x (B, 3, H, W) → the quantizer's input (B, headChannels, h, w).
    func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor {
        var h = input(tape, x)  // (B, C0, H, W)
        for level in blocks.indices {
            for block in blocks[level] { h = block(tape, h) }
            if level < downsamples.count { h = downsamples[level](tape, h) }  // (B, C[level+1], H/2^(level+1), …)
        }
        return output(tape, tape.silu(outputNorm(tape, h)))  // (B, headChannels, h, w)
    }
}

struct Decoder {
    let paints: DecoderOutput
    let input: Conv2d
    let blocks: [[ResidualBlock]]  // per level
    let upsamples: [Conv2d]  // upsamples[l] takes level l+1 up to level l
    let outputNorm: FeatureNorm
    let output: Conv2d

    init(_ p: ParameterStore, config: AutoencoderConfig, rng: inout RandomGenerator) {
        let c = config.decoderWidths, groups = config.groups, norm = config.featureNorm, top = c.count - 1
        paints = config.decoderOutput ?? .rgb
        input = Conv2d(p, "decoder.input", in: config.codeDimension, out: c[top], kernel: 3, rng: &rng)
        var blocks: [[ResidualBlock]] = [], upsamples: [Conv2d] = []
        for level in c.indices {
            blocks.append((0..<config.decoderBlocks[level]).map { i in
                ResidualBlock(p, "decoder.level\(level).block\(i)", channels: c[level], norm: norm, groups: groups,
                              rng: &rng)
            })
            if level < top {
                upsamples.append(Conv2d(p, "decoder.level\(level).upsample", in: c[level + 1], out: c[level],
                                        kernel: 3, rng: &rng))
            }
        }
        self.blocks = blocks
        self.upsamples = upsamples
        outputNorm = FeatureNorm(p, "decoder.output_norm", channels: c[0], kind: norm, groups: groups, rng: &rng)
        output = Conv2d(p, "decoder.output", in: c[0], out: paints == .alpha ? 7 : 3, kernel: 3, rng: &rng)
    }

    /// latent (B, D, h, w) → picture (B, 3, H, W).
    func callAsFunction(_ tape: Tape, _ latent: Tensor) -> Tensor {
        var h = input(tape, latent)  // (B, C[top], h, w)
        for level in blocks.indices.reversed() {
            for block in blocks[level] { h = block(tape, h) }
            if level > 0 {
                h = upsamples[level - 1](tape, tape.upsampleNearest(h, factor: 2))  // (B, C[level−1], 2·…, 2·…)
            }
        }
        let painted = output(tape, tape.silu(outputNorm(tape, h)))  // (B, 3 or 7, H, W)
        guard paints == .alpha else { return painted }
        let coverage = tape.sigmoid(tape.slice(painted, axis: 1, 0..<1))  // (B, 1, H, W)
        let foreground = tape.slice(painted, axis: 1, 1..<4), background = tape.slice(painted, axis: 1, 4..<7)
        let mix = tape.mul(tape.concatenate([coverage, coverage, coverage], axis: 1), tape.sub(foreground, background))
        return tape.add(background, mix)  // (B, 3, H, W)
    }
}

public final class Autoencoder {
    /// Every decoder parameter's name starts with this (what decoder fine-tuning trains).
    public static let decoderPrefix = "decoder."

    public let config: AutoencoderConfig
    /// Every trained tensor, named by its checkpoint key.
    public let parameters = ParameterStore()
    public let quantizer: any Quantizer
    let encoder: Encoder
    let decoder: Decoder

    /// A freshly initialised model; the config must have passed `validate()`.
    public init(config: AutoencoderConfig, seed: UInt64) {
        self.config = config
        var rng = RandomGenerator(seed: seed)
        let quantizer: any Quantizer = switch config.quantizer {
        case .vq: VectorQuantizer(config: config, rng: &rng)
        case .gumbel: GumbelQuantizer(config: config, parameters: parameters, rng: &rng)
        case .fsq: FiniteScalarQuantizer(config: config)
        }
        self.quantizer = quantizer
        encoder = Encoder(parameters, config: config, headChannels: quantizer.headChannels, rng: &rng)
        decoder = Decoder(parameters, config: config, rng: &rng)
    }

    /// The encoder's output before quantization, (B, headChannels, h, w).
    public func encode(_ tape: Tape, _ pictures: Tensor) -> Tensor {
        precondition(pictures.shape.count == 4 && pictures.shape[1] == 3
                     && pictures.shape[2] == config.imageSize && pictures.shape[3] == config.imageSize,
                     "Autoencoder.encode: pictures \(pictures.shape), expected (B, 3, \(config.imageSize), \(config.imageSize))")
        return encoder(tape, pictures)
    }

    /// A latent (B, D, h, w), quantized or not, drawn as pictures (B, 3, H, W).
    public func decode(_ tape: Tape, _ latent: Tensor) -> Tensor {
        precondition(latent.shape.count == 4 && latent.shape[1] == config.codeDimension,
                     "Autoencoder.decode: latent \(latent.shape) needs \(config.codeDimension) channels")
        return decoder(tape, latent)
    }

    /// The token grid of each picture: codes (B·h·w), row-major per picture.
    public func tokens(_ pictures: Tensor) -> [Int32] {
        let tape = Tape()
        var rng = RandomGenerator(seed: 0)  // inference draws nothing
        let head = encode(tape, pictures)
        let codes = quantizer.quantize(tape, head, training: false, step: 0, totalSteps: 1, rng: &rng).codes
        tape.reset()
        return codes
    }

    /// The token grid (h·w codes) of one picture, resized to the model's size when it differs.
    public func tokens(picture: Image) -> [Int32] {
        let size = config.imageSize
        let sized = picture.width == size && picture.height == size ? picture : picture.resized(width: size, height: size)
        return tokens(Tensor(shape: [1, 3, size, size], values: planarPixels(sized)))
    }

    /// Pictures (B, 3, H, W) from token grids (B·h·w codes, each below K).
    public func pictures(tokens: [Int32], batch: Int) -> Tensor {
        let side = config.gridSize
        let tape = Tape()
        let picture = decode(tape, quantizer.embed(tokens, batch: batch, height: side, width: side))
        tape.reset()
        return picture
    }

    /// This model's encoder and codebook with a new decoder of `config`'s shape (only the
    /// decoder's channels, blocks and output may differ), so the token grids stay exactly this
    /// model's. With the same channels the decoder starts as this one: its layers are copied and
    /// each added residual block's last convolution starts at zero, so the block starts as the
    /// identity and the new decoder draws what the old one drew; a new kind of output layer
    /// starts afresh on the copied layers. Other channels start afresh throughout.
    public func withNewDecoder(_ config: AutoencoderConfig, seed: UInt64) -> Autoencoder {
        var kept = config
        kept.decoderChannels = self.config.decoderChannels
        kept.decoderBlocks = self.config.decoderBlocks
        kept.decoderOutput = self.config.decoderOutput
        precondition(kept == self.config,
                     "Autoencoder.withNewDecoder: only the decoder's channels, blocks and output may change")
        let model = Autoencoder(config: config, seed: seed)
        let warmStart = config.decoderWidths == self.config.decoderWidths
        let source = Dictionary(uniqueKeysWithValues: namedTensors.map { ($0.name, $0.tensor) })
        for (name, tensor) in model.namedTensors {
            if let old = source[name], old.shape == tensor.shape, !name.hasPrefix(Self.decoderPrefix) || warmStart {
                tensor.data.update(from: old.data, count: tensor.count)
            } else if warmStart && name.hasSuffix(".conv2.weight") {
                tensor.data.update(repeating: 0, count: tensor.count)
            }
        }
        return model
    }

    /// Parameters and quantizer buffers under their checkpoint names.
    public var namedTensors: [(name: String, tensor: Tensor)] {
        parameters.entries.map { ($0.name, $0.tensor) } + quantizer.buffers
    }
}
