// The seeded generator behind every random choice in Tessera: xoshiro256** (Blackman & Vigna
// 2018) seeded through SplitMix64. Normals use Marsaglia's polar method with a logarithm
// computed here, so the same seed gives the same numbers on every machine, whatever its libm.

public struct RandomGenerator: Sendable, Equatable {
    /// The whole state; saving and restoring it resumes the stream exactly.
    public var state: [UInt64]

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitMix(), splitMix(), splitMix(), splitMix()]
    }

    /// Restores a saved state; nil unless it is four words, not all zero.
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        self.state = state
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotate(state[3], 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniformDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform integer in 0..<bound, unbiased (Lemire's multiply-and-reject).
    public mutating func int(below bound: Int) -> Int {
        precondition(bound > 0, "int(below:): bound \(bound) must be positive")
        let b = UInt64(bound)
        var product = next().multipliedFullWidth(by: b)
        if product.low < b {
            let threshold = (0 &- b) % b
            while product.low < threshold { product = next().multipliedFullWidth(by: b) }
        }
        return Int(product.high)
    }

    /// A pair of independent standard normals (Marsaglia's polar method).
    public mutating func normalPair() -> (Float, Float) {
        while true {
            let u = 2 * uniformDouble() - 1, v = 2 * uniformDouble() - 1
            let s = u * u + v * v
            if s > 0 && s < 1 {
                let f = (-2 * portableLog(s) / s).squareRoot()
                return (Float(u * f), Float(v * f))
            }
        }
    }

    /// One standard normal.
    public mutating func normal() -> Float { normalPair().0 }

    /// Fills `count` floats with normals of the given mean and standard deviation.
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
        var i = 0
        while i < count {
            let (a, b) = normalPair()
            out[i] = mean + std * a
            if i + 1 < count { out[i + 1] = mean + std * b }
            i += 2
        }
    }

    /// Fills `count` floats uniformly from [low, high).
    public mutating func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, low: Float, high: Float) {
        for i in 0..<count { out[i] = low + (high - low) * uniform() }
    }

    /// An index drawn with probability proportional to `weights[i]` (non-negative, not all 0).
    public mutating func categorical(_ weights: UnsafePointer<Float>, count: Int) -> Int {
        var total: Double = 0
        for i in 0..<count { total += Double(weights[i]) }
        precondition(total > 0, "categorical: weights sum to \(total)")
        let target = uniformDouble() * total
        var running: Double = 0
        for i in 0..<count {
            running += Double(weights[i])
            if target < running { return i }
        }
        return (0..<count).last { weights[$0] > 0 }!
    }

    /// Fisher–Yates shuffle, the same order for the same state on every machine.
    public mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, int(below: i + 1))
        }
    }
}

/// ln x for finite x > 0, from IEEE operations only (exact scaling by a power of two and the
/// series ln m = 2·atanh((m−1)/(m+1)) on m ∈ [√½, √2)), so results are bit-identical across
/// machines. Accurate to a few ulp, which is all the normal sampler needs.
func portableLog(_ x: Double) -> Double {
    precondition(x > 0 && x.isFinite, "portableLog: \(x)")
    var m = x.significand  // [1, 2)
    var e = Double(x.exponent)
    if m > 1.414_213_562_373_095_1 { m *= 0.5; e += 1 }
    let s = (m - 1) / (m + 1), s2 = s * s
    var term = s, series = 0.0
    for k in 0..<12 {
        series += term / Double(2 * k + 1)
        term *= s2
    }
    return 2 * series + e * 0.693_147_180_559_945_31
}
