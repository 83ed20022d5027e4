// Every tape op against central finite differences of its Double reference, on random small
// shapes (the sizes themselves drawn from a seeded generator, odd ones included).
import Foundation
import Testing
import TesseraTensor
import TesseraTestSupport

/// Forward values agree to 5e-6 and gradients to 1e-5 (relative, floor 1): Float arithmetic
/// against Double finite differences with step 1e-5. The largest errors seen are about 1e-6.
let forwardTolerance = 5e-6
let gradientTolerance = 1e-5

private func expectPasses(_ result: GradientCheckResult, forward: Double = forwardTolerance,
                          gradient: Double = gradientTolerance, _ comment: Comment) {
    #expect(result.forwardError <= forward, comment)
    #expect(result.gradientError <= gradient, comment)
}

private func sizes(_ rng: inout RandomGenerator, _ ranges: ClosedRange<Int>...) -> [Int] {
    ranges.map { $0.lowerBound + rng.int(below: $0.count) }
}

@Suite struct GradientChecks {
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matmul(transposeA: Bool, transposeB: Bool) {
        var rng = RandomGenerator(seed: 1)
        let s = sizes(&rng, 1...7, 1...7, 1...7)
        let (m, n, k) = (s[0], s[1], s[2])
        let a = GradientCheckInput.random(transposeA ? [k, m] : [m, k], &rng)
        let b = GradientCheckInput.random(transposeB ? [n, k] : [k, n], &rng)
        let result = gradientCheck([a, b]) { tape, x in
            tape.matmul(x[0], x[1], transposeA: transposeA, transposeB: transposeB)
        } reference: { x in
            Reference.matmul(x[0], x[1], m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        }
        expectPasses(result, "m=\(m) n=\(n) k=\(k) \(result)")
    }

    @Test(arguments: [(false, false), (true, true)])
    func batchedMatmul(transposeA: Bool, transposeB: Bool) {
        let (batch, m, n, k) = (3, 4, 5, 6)
        var rng = RandomGenerator(seed: 2)
        let a = GradientCheckInput.random(transposeA ? [batch, k, m] : [batch, m, k], &rng)
        let b = GradientCheckInput.random(transposeB ? [batch, n, k] : [batch, k, n], &rng)
        let result = gradientCheck([a, b]) { tape, x in
            tape.matmul(x[0], x[1], transposeA: transposeA, transposeB: transposeB)
        } reference: { x in
            (0..<batch).flatMap { i in
                Reference.matmul(Array(x[0][i * m * k..<(i + 1) * m * k]), Array(x[1][i * k * n..<(i + 1) * k * n]),
                                 m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
            }
        }
        expectPasses(result, "\(result)")
    }

    @Test func linear() {
        var rng = RandomGenerator(seed: 3)
        let s = sizes(&rng, 1...5, 1...4, 1...9, 1...9)
        let (batch, time, inChannels, outChannels) = (s[0], s[1], s[2], s[3])
        let inputs = [GradientCheckInput.random([batch, time, inChannels], &rng),
                      .random([outChannels, inChannels], &rng), .random([outChannels], &rng)]
        let result = gradientCheck(inputs) { tape, x in tape.linear(x[0], weight: x[1], bias: x[2]) } reference: { x in
            Reference.linear(x[0], x[1], x[2], rows: batch * time, inChannels: inChannels, outChannels: outChannels)
        }
        expectPasses(result, "\(s) \(result)")
    }

    @Test func arithmetic() {
        var rng = RandomGenerator(seed: 4)
        let inputs = [GradientCheckInput.random([3, 5], &rng), .random([3, 5], &rng)]
        let add = gradientCheck(inputs) { t, x in t.add(x[0], x[1]) } reference: { x in zip(x[0], x[1]).map(+) }
        let sub = gradientCheck(inputs) { t, x in t.sub(x[0], x[1]) } reference: { x in zip(x[0], x[1]).map(-) }
        let mul = gradientCheck(inputs) { t, x in t.mul(x[0], x[1]) } reference: { x in zip(x[0], x[1]).map(*) }
        let scaled = gradientCheck([inputs[0]]) { t, x in t.scale(x[0], by: -2.5) } reference: { x in x[0].map { -2.5 * $0 } }
        let total = gradientCheck([inputs[0]]) { t, x in t.sum(x[0]) } reference: { x in [x[0].reduce(0, +)] }
        let mean = gradientCheck([inputs[0]]) { t, x in t.mean(x[0]) } reference: { x in [x[0].reduce(0, +) / 15] }
        let reshaped = gradientCheck([inputs[0]]) { t, x in t.mul(t.reshape(x[0], [5, 3]), t.reshape(x[0], [5, 3])) } reference: { x in x[0].map { $0 * $0 } }
        let learned = GradientCheckInput.random([1], &rng)
        let byScalar = gradientCheck([inputs[0], learned]) { t, x in t.scale(x[0], byScalar: x[1]) } reference: { x in x[0].map { x[1][0] * $0 } }
        let exponential = gradientCheck([inputs[0]]) { t, x in t.exp(x[0], maximum: 0.5) } reference: { x in x[0].map { Foundation.exp(min($0, 0.5)) } }
        for (name, result) in [("add", add), ("sub", sub), ("mul", mul), ("scale", scaled), ("sum", total), ("mean", mean), ("reshape", reshaped),
                               ("scale by scalar", byScalar), ("capped exp", exponential)] {
            expectPasses(result, "\(name): \(result)")
        }
    }

    @Test func activations() {
        var rng = RandomGenerator(seed: 5)
        let x = GradientCheckInput.random([4, 13], &rng, scale: 3)
        let gelu = gradientCheck([x]) { t, x in t.gelu(x[0]) } reference: { Reference.gelu($0[0]) }
        let silu = gradientCheck([x]) { t, x in t.silu(x[0]) } reference: { Reference.silu($0[0]) }
        let relu = gradientCheck([x]) { t, x in t.relu(x[0]) } reference: { Reference.relu($0[0]) }
        expectPasses(gelu, "gelu: \(gelu)")
        expectPasses(silu, "silu: \(silu)")
        expectPasses(relu, "relu: \(relu)")
    }

    @Test func softmax() {
        var rng = RandomGenerator(seed: 6)
        let s = sizes(&rng, 1...6, 1...40)
        let result = gradientCheck([.random(s, &rng, scale: 3)]) { t, x in t.softmax(x[0]) } reference: { x in
            Reference.softmax(x[0], rows: s[0], columns: s[1])
        }
        expectPasses(result, "\(s) \(result)")
    }

    @Test func layerNorm() {
        var rng = RandomGenerator(seed: 7)
        let s = sizes(&rng, 1...6, 2...37)
        let inputs = [GradientCheckInput.random(s, &rng), .random([s[1]], &rng), .random([s[1]], &rng)]
        let result = gradientCheck(inputs) { t, x in t.layerNorm(x[0], weight: x[1], bias: x[2]) } reference: { x in
            Reference.layerNorm(x[0], x[1], x[2], rows: s[0], channels: s[1])
        }
        expectPasses(result, "\(s) \(result)")
    }

    @Test func groupNorm() {
        var rng = RandomGenerator(seed: 8)
        let (batch, groups, perGroup, height, width) = (2, 3, 2, 3, 5)
        let channels = groups * perGroup
        let inputs = [GradientCheckInput.random([batch, channels, height, width], &rng),
                      .random([channels], &rng), .random([channels], &rng)]
        let result = gradientCheck(inputs) { t, x in t.groupNorm(x[0], groups: groups, weight: x[1], bias: x[2]) } reference: { x in
            Reference.groupNorm(x[0], x[1], x[2], batch: batch, channels: channels, spatial: height * width, groups: groups)
        }
        expectPasses(result, "\(result)")
    }

    @Test func crossEntropyMeanWithIgnoredRows() {
        var rng = RandomGenerator(seed: 9)
        let (rows, classes) = (7, 11)
        let targets: [Int32] = [3, -1, 0, 10, -1, 5, 5]
        let result = gradientCheck([.random([rows, classes], &rng, scale: 2)]) { t, x in
            t.crossEntropy(x[0], targets: targets)
        } reference: { x in
            [Reference.crossEntropy(x[0], targets: targets, weights: [Double](repeating: 0.2, count: rows), classes: classes)]
        }
        expectPasses(result, "\(result)")
    }

    @Test func crossEntropyWeighted() {
        var rng = RandomGenerator(seed: 10)
        let (rows, classes) = (5, 9)
        let targets: [Int32] = [1, 8, 0, 4, 4]
        let weights: [Float] = [0.125, 0.875, 0.5, 0, 2]
        let result = gradientCheck([.random([rows, classes], &rng, scale: 2)]) { t, x in
            t.crossEntropy(x[0], targets: targets, weights: weights)
        } reference: { x in
            [Reference.crossEntropy(x[0], targets: targets, weights: weights.map(Double.init), classes: classes)]
        }
        expectPasses(result, "\(result)")
    }

    @Test func embedding() {
        var rng = RandomGenerator(seed: 11)
        let ids: [Int32] = [2, 0, 2, 4, 1, 2]  // repeats accumulate
        let result = gradientCheck([.random([5, 6], &rng)]) { t, x in t.embedding(x[0], ids: ids, idShape: [2, 3]) } reference: { x in
            Reference.embedding(x[0], ids: ids, channels: 6)
        }
        expectPasses(result, "\(result)")
    }

    @Test(arguments: [(3, 1, 1), (4, 2, 1), (3, 2, 0), (1, 1, 0), (5, 3, 2)])
    func conv2d(kernel: Int, stride: Int, padding: Int) {
        var rng = RandomGenerator(seed: UInt64(12 + kernel * 10 + stride))
        let (batch, inChannels, outChannels, height, width) = (2, 3, 4, 7, 6)
        let inputs = [GradientCheckInput.random([batch, inChannels, height, width], &rng),
                      .random([outChannels, inChannels, kernel, kernel], &rng, scale: 0.5), .random([outChannels], &rng)]
        let result = gradientCheck(inputs) { t, x in t.conv2d(x[0], weight: x[1], bias: x[2], stride: stride, padding: padding) } reference: { x in
            Reference.conv2d(x[0], x[1], x[2], batch: batch, inChannels: inChannels, height: height, width: width,
                             outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
        }
        expectPasses(result, "k=\(kernel) s=\(stride) p=\(padding) \(result)")
    }

    @Test(arguments: [(4, 2, 1), (3, 1, 1), (1, 1, 0), (3, 2, 0)])
    func convTranspose2d(kernel: Int, stride: Int, padding: Int) {
        var rng = RandomGenerator(seed: UInt64(30 + kernel * 10 + stride))
        let (batch, inChannels, outChannels, height, width) = (2, 3, 2, 4, 5)
        let inputs = [GradientCheckInput.random([batch, inChannels, height, width], &rng),
                      .random([inChannels, outChannels, kernel, kernel], &rng, scale: 0.5), .random([outChannels], &rng)]
        let result = gradientCheck(inputs) { t, x in t.convTranspose2d(x[0], weight: x[1], bias: x[2], stride: stride, padding: padding) } reference: { x in
            Reference.convTranspose2d(x[0], x[1], x[2], batch: batch, inChannels: inChannels, height: height, width: width,
                                      outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
        }
        expectPasses(result, "k=\(kernel) s=\(stride) p=\(padding) \(result)")
    }

    @Test func upsampleNearest() {
        var rng = RandomGenerator(seed: 40)
        let result = gradientCheck([.random([2, 3, 3, 4], &rng)]) { t, x in t.upsampleNearest(x[0], factor: 2) } reference: { x in
            Reference.upsampleNearest(x[0], planes: 6, height: 3, width: 4, factor: 2)
        }
        expectPasses(result, "\(result)")
    }
}
