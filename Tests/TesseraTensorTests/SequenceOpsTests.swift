// The DiT ops (slice, concatenate, adaLN modulation and gating) against finite differences of
// their Double references.
import Testing
import TesseraTensor
import TesseraTestSupport

@Suite struct SequenceOpGradients {
    @Test(arguments: [0, 1, 2])
    func sliceAlongEachAxis(axis: Int) {
        var rng = RandomGenerator(seed: 61)
        let shape = [3, 5, 4]
        let range = 1..<(shape[axis] - 1)
        let result = gradientCheck([.random(shape, &rng)]) { tape, x in tape.slice(x[0], axis: axis, range) } reference: { x in
            var out = [Double]()
            for i in 0..<shape[0] { for j in 0..<shape[1] { for k in 0..<shape[2] where range.contains([i, j, k][axis]) {
                out.append(x[0][(i * shape[1] + j) * shape[2] + k])
            } } }
            return out
        }
        #expect(result.forwardError == 0 && result.gradientError <= 1e-5, "\(result)")
    }

    @Test(arguments: [0, 1, 2])
    func concatenateAlongEachAxis(axis: Int) {
        var rng = RandomGenerator(seed: 62)
        var first = [2, 3, 4], second = [2, 3, 4]
        first[axis] = 2
        second[axis] = 3
        let result = gradientCheck([.random(first, &rng), .random(second, &rng)]) { tape, x in
            tape.concatenate([x[0], x[1]], axis: axis)
        } reference: { x in
            var joined = first
            joined[axis] = 5
            var out = [Double]()
            for i in 0..<joined[0] { for j in 0..<joined[1] { for k in 0..<joined[2] {
                var index = [i, j, k]
                if index[axis] < first[axis] {
                    out.append(x[0][(index[0] * first[1] + index[1]) * first[2] + index[2]])
                } else {
                    index[axis] -= first[axis]
                    out.append(x[1][(index[0] * second[1] + index[1]) * second[2] + index[2]])
                }
            } } }
            return out
        }
        #expect(result.forwardError == 0 && result.gradientError <= 1e-5, "\(result)")
        // Cutting the joined tensor gives the parts back.
        let tape = Tape()
        let a = Tensor(shape: first, values: (0..<first.reduce(1, *)).map(Float.init))
        let b = Tensor(shape: second, values: (0..<second.reduce(1, *)).map { -Float($0) })
        let joined = tape.concatenate([a, b], axis: axis)
        #expect(tape.slice(joined, axis: axis, 0..<2).values == a.values)
        #expect(tape.slice(joined, axis: axis, 2..<5).values == b.values)
    }

    @Test func modulateAndGate() {
        var rng = RandomGenerator(seed: 63)
        let (batch, time, channels) = (3, 4, 5)
        let inputs: [GradientCheckInput] = [.random([batch, time, channels], &rng), .random([batch, channels], &rng),
                                            .random([batch, channels], &rng), .random([batch, channels], &rng)]
        let result = gradientCheck(inputs) { tape, x in
            tape.gate(tape.modulate(x[0], shift: x[1], scale: x[2]), by: x[3])
        } reference: { x in
            (0..<(batch * time * channels)).map { i in
                let (b, c) = (i / (time * channels), i % channels)
                return (x[0][i] * (1 + x[2][b * channels + c]) + x[1][b * channels + c]) * x[3][b * channels + c]
            }
        }
        #expect(result.forwardError <= 5e-6 && result.gradientError <= 1e-5, "\(result)")
    }
}
