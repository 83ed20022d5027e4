// A small patch discriminator (PatchGAN, Isola et al. 2017): three convolutions give one logit
// per patch of the picture, trained with the hinge loss. It sharpens the decoder's edges when
// its loss is switched on after a warm-up ("the GAN as a plug-in").
import TesseraTensor

public final class PatchDiscriminator {
    public let parameters = ParameterStore()
    let conv1: Conv2d
    let conv2: Conv2d
    let norm2: FeatureNorm
    let conv3: Conv2d

    public init(channels: Int = 32, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        conv1 = Conv2d(parameters, "discriminator.conv1", in: 3, out: channels, kernel: 4, stride: 2, padding: 1, rng: &rng)
        conv2 = Conv2d(parameters, "discriminator.conv2", in: channels, out: 2 * channels, kernel: 4, stride: 2, padding: 1, rng: &rng)
        norm2 = FeatureNorm(parameters, "discriminator.norm2", channels: 2 * channels, groups: 8, rng: &rng)
        conv3 = Conv2d(parameters, "discriminator.conv3", in: 2 * channels, out: 1, kernel: 3, rng: &rng)
    }

    /// pictures (B, 3, H, W) → one logit per patch (B, 1, H/4, W/4).
    public func callAsFunction(_ tape: Tape, _ pictures: Tensor) -> Tensor {
        var h = tape.silu(conv1(tape, pictures))  // (B, C, H/2, W/2)
        h = tape.silu(norm2(tape, conv2(tape, h)))  // (B, 2C, H/4, W/4)
        return conv3(tape, h)  // (B, 1, H/4, W/4)
    }
}
