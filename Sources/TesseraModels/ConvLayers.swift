// The convolutional building blocks of the autoencoder and the patch discriminator: a conv
// layer, a feature norm (group norm, Wu & He 2018, or layer norm per position) and the
// pre-activation residual block of the VQGAN family (norm → SiLU → conv → norm → SiLU → conv,
// plus the input).
import TesseraTensor

/// A 2-D convolution with a bias; PyTorch's default initialisation (uniform, bound 1/√fan-in).
struct Conv2d {
    let weight: Tensor  // (Cout, Cin, K, K)
    let bias: Tensor  // (Cout)
    let stride: Int
    let padding: Int

    init(_ parameters: ParameterStore, _ name: String, in inChannels: Int, out outChannels: Int, kernel: Int,
         stride: Int = 1, padding: Int? = nil, initialScale: Float = 1, rng: inout RandomGenerator) {
        let bound = initialScale / Float(inChannels * kernel * kernel).squareRoot()
        weight = parameters.add(name + ".weight", shape: [outChannels, inChannels, kernel, kernel],
                                .uniform(bound: bound), decays: true, rng: &rng)
        bias = parameters.add(name + ".bias", shape: [outChannels], .zeros, decays: false, rng: &rng)
        self.stride = stride
        self.padding = padding ?? (kernel - 1) / 2
    }

    func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor {
        tape.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Group norm over each group of C/G channels across the whole picture, or, per position, layer
/// norm over the C channels of each pixel alone, so that a feature depends only on what its
/// receptive field sees and not on the rest of the picture.
struct FeatureNorm {
    let weight: Tensor  // (C)
    let bias: Tensor  // (C)
    let kind: ConvNorm
    let groups: Int

    init(_ parameters: ParameterStore, _ name: String, channels: Int, kind: ConvNorm = .group, groups: Int,
         rng: inout RandomGenerator) {
        precondition(channels % groups == 0, "FeatureNorm \(name): \(channels) channels in \(groups) groups")
        weight = parameters.add(name + ".weight", shape: [channels], .ones, decays: false, rng: &rng)
        bias = parameters.add(name + ".bias", shape: [channels], .zeros, decays: false, rng: &rng)
        self.kind = kind
        self.groups = groups
    }

    func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor {
        switch kind {
        case .group: tape.groupNorm(x, groups: groups, weight: weight, bias: bias)
        case .position: tape.channelsFirst(tape.layerNorm(tape.channelsLast(x), weight: weight, bias: bias))
        }
    }
}

/// x + conv(SiLU(norm(conv(SiLU(norm(x)))))), channels unchanged. The second convolution starts
/// small, so a fresh block is close to the identity and deep stacks train from the start.
struct ResidualBlock {
    let norm1: FeatureNorm, conv1: Conv2d
    let norm2: FeatureNorm, conv2: Conv2d

    init(_ parameters: ParameterStore, _ name: String, channels: Int, norm: ConvNorm = .group, groups: Int,
         rng: inout RandomGenerator) {
        norm1 = FeatureNorm(parameters, name + ".norm1", channels: channels, kind: norm, groups: groups, rng: &rng)
        conv1 = Conv2d(parameters, name + ".conv1", in: channels, out: channels, kernel: 3, rng: &rng)
        norm2 = FeatureNorm(parameters, name + ".norm2", channels: channels, kind: norm, groups: groups, rng: &rng)
        conv2 = Conv2d(parameters, name + ".conv2", in: channels, out: channels, kernel: 3, initialScale: 0.1, rng: &rng)
    }

    func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor {
        var h = conv1(tape, tape.silu(norm1(tape, x)))  // (B, C, H, W)
        h = conv2(tape, tape.silu(norm2(tape, h)))  // (B, C, H, W)
        return tape.add(x, h)
    }
}
