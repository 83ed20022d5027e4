// The seeded generator: the exact stream a reference implementation of xoshiro256** with
// SplitMix64 seeding gives (computed independently in Python), reproducible resumption, and
// the distributions it draws.
import Foundation
import Testing
import TesseraTensor

@Suite struct RandomGeneratorTests {
    @Test func streamMatchesTheReferenceAlgorithm() {
        var rng = RandomGenerator(seed: 42)
        #expect([rng.next(), rng.next(), rng.next()] == [0x1578_0b2e_0c2e_c716, 0x6104_d986_6d11_3a7e, 0xae17_5332_39e4_99a1])
    }

    @Test func normalsMatchThePolarMethod() {
        var rng = RandomGenerator(seed: 42)
        let (a, b) = rng.normalPair()
        let (c, d) = rng.normalPair()
        let expected: [Double] = [-0.7262191382447857, -0.21119691823195985, 0.2216227015035933, 0.5227716877560146]
        for (x, e) in zip([a, b, c, d], expected) { #expect(abs(Double(x) - e) < 1e-6) }
    }

    @Test func savedStateResumesTheStream() {
        var rng = RandomGenerator(seed: 9)
        for _ in 0..<10 { _ = rng.next() }
        var resumed = RandomGenerator(state: rng.state)!
        #expect((0..<5).map { _ in rng.next() } == (0..<5).map { _ in resumed.next() })
        #expect(RandomGenerator(state: [0, 0, 0, 0]) == nil)
        #expect(RandomGenerator(state: [1, 2]) == nil)
    }

    @Test func distributionsHaveTheRightMoments() {
        var rng = RandomGenerator(seed: 3)
        let n = 200_000
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { buffer.deallocate() }
        rng.fillNormal(buffer, count: n, mean: 1, std: 2)
        let values = (0..<n).map { Double(buffer[$0]) }
        let mean = values.reduce(0, +) / Double(n)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        #expect(abs(mean - 1) < 0.02 && abs(variance - 4) < 0.05, "mean \(mean) variance \(variance)")

        let uniforms = (0..<n).map { _ in rng.uniform() }
        #expect(uniforms.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(uniforms.reduce(0, +) / Float(n) - 0.5) < 0.01)

        var counts = [0, 0, 0, 0]
        for _ in 0..<n { counts[rng.int(below: 4)] += 1 }
        #expect(counts.allSatisfy { abs(Double($0) / Double(n) - 0.25) < 0.01 }, "\(counts)")
    }

    @Test func categoricalFollowsTheWeightsAndNeverPicksZero() {
        var rng = RandomGenerator(seed: 4)
        let weights: [Float] = [0.1, 0, 0.6, 0.3]
        var counts = [0, 0, 0, 0]
        for _ in 0..<100_000 { counts[rng.categorical(weights, count: 4)] += 1 }
        #expect(counts[1] == 0)
        for i in [0, 2, 3] { #expect(abs(Double(counts[i]) / 100_000 - Double(weights[i])) < 0.01, "\(counts)") }
    }

    @Test func shuffleIsAPermutationAndSeeded() {
        var a = RandomGenerator(seed: 5), b = RandomGenerator(seed: 5)
        var x = Array(0..<50), y = Array(0..<50)
        a.shuffle(&x)
        b.shuffle(&y)
        #expect(x == y && x != Array(0..<50) && x.sorted() == Array(0..<50))
    }
}
