// The autoencoder's tape ops against Double references and central finite differences:
// l2 normalisation over channels, channels last and first, KL to the uniform prior, hinge.
import Foundation
import Testing
import TesseraTensor
import TesseraTestSupport

@Suite struct LatentOpGradients {
    @Test func l2NormalizeChannels() {
        var rng = RandomGenerator(seed: 41)
        let (batch, channels, height, width) = (2, 5, 3, 2)
        let input = GradientCheckInput.random([batch, channels, height, width], &rng)
        let plane = height * width
        let result = gradientCheck([input]) { tape, x in tape.l2NormalizeChannels(x[0]) } reference: { x in
            var out = x[0]
            for b in 0..<batch {
                for p in 0..<plane {
                    let norm = (0..<channels).map { x[0][(b * channels + $0) * plane + p] }.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    for c in 0..<channels { out[(b * channels + c) * plane + p] /= norm }
                }
            }
            return out
        }
        #expect(result.forwardError <= 5e-6 && result.gradientError <= 1e-5, "\(result)")
    }

    @Test func sigmoid() {
        var rng = RandomGenerator(seed: 44)
        let input = GradientCheckInput.random([2, 3, 4], &rng)
        let result = gradientCheck([input]) { tape, x in tape.sigmoid(x[0]) } reference: { x in x[0].map { 1 / (1 + exp(-$0)) } }
        #expect(result.forwardError <= 1e-6 && result.gradientError <= 1e-5, "\(result)")
    }

    @Test func channelsLastAndFirst() {
        var rng = RandomGenerator(seed: 42)
        let (batch, channels, height, width) = (2, 3, 4, 5)
        let input = GradientCheckInput.random([batch, channels, height, width], &rng)
        let last = gradientCheck([input]) { tape, x in tape.channelsLast(x[0]) } reference: { x in
            var out = [Double]()
            for b in 0..<batch { for y in 0..<height { for xx in 0..<width { for c in 0..<channels {
                out.append(x[0][((b * channels + c) * height + y) * width + xx])
            } } } }
            return out
        }
        #expect(last.forwardError == 0 && last.gradientError <= 1e-5, "\(last)")
        let roundTrip = gradientCheck([input]) { tape, x in tape.channelsFirst(tape.channelsLast(x[0])) } reference: { $0[0] }
        #expect(roundTrip.forwardError == 0 && roundTrip.gradientError <= 1e-5, "\(roundTrip)")
    }

    @Test func klToUniform() {
        var rng = RandomGenerator(seed: 43)
        let (rows, classes) = (4, 7)
        let input = GradientCheckInput.random([rows, classes], &rng, scale: 2)
        let result = gradientCheck([input]) { tape, x in tape.klToUniform(x[0]) } reference: { x in
            var total = 0.0
            for r in 0..<rows {
                let logits = x[0][r * classes..<(r + 1) * classes]
                let top = logits.max()!
                let sum = logits.map { exp($0 - top) }.reduce(0, +)
                total += logits.map { l in let q = exp(l - top) / sum; return q * log(q * Double(classes)) }.reduce(0, +)
            }
            return [total / Double(rows)]
        }
        #expect(result.forwardError <= 5e-6 && result.gradientError <= 1e-5, "\(result)")
        // Equal logits are the uniform distribution itself: no divergence.
        let tape = Tape()
        #expect(abs(tape.klToUniform(Tensor(shape: [2, 5], values: [Float](repeating: 0.3, count: 10))).item) < 1e-6)
    }

    @Test(arguments: [true, false])
    func hingeLoss(real: Bool) {
        // Values kept away from the hinge at ±1, where the loss has no derivative.
        let values: [Float] = [-2.5, -0.4, 0.3, 1.7, 0.6, -1.4]
        let sign: Double = real ? 1 : -1
        let result = gradientCheck([GradientCheckInput(shape: [6], values: values)]) { tape, x in
            tape.hingeLoss(x[0], real: real)
        } reference: { x in [x[0].map { max(0, 1 - sign * $0) }.reduce(0, +) / 6] }
        #expect(result.forwardError <= 5e-6 && result.gradientError <= 1e-5, "\(result)")
    }

    @Test func detachedCopiesValuesWithoutGradient() {
        let x = Tensor(shape: [3], values: [1, 2, 3], requiresGrad: true)
        let copy = x.detached()
        #expect(copy.values == [1, 2, 3] && !copy.requiresGrad)
        copy.data[0] = 9
        #expect(x.values == [1, 2, 3])
    }
}
