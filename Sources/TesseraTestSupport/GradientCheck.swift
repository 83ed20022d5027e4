// The gradient check every tape op passes: random inputs, loss = Σ op(x) ⊙ R for a fixed
// random R; the tape's Float gradients against central finite differences of the Double
// reference. Forward values are compared too.
import TesseraTensor

public struct GradientCheckResult: CustomStringConvertible {
    /// max |op(x) − reference(x)| / max(1, |reference(x)|).
    public let forwardError: Double
    /// max |analytic − numeric| / max(1, |numeric|) over every input element.
    public let gradientError: Double
    public var description: String { "forward error \(forwardError), gradient error \(gradientError)" }
}

public struct GradientCheckInput {
    public let shape: [Int]
    public let values: [Float]
    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }

    /// Standard normals, scaled.
    public static func random(_ shape: [Int], _ rng: inout RandomGenerator, scale: Float = 1) -> GradientCheckInput {
        let count = shape.reduce(1, *)
        return GradientCheckInput(shape: shape, values: (0..<count).map { _ in scale * rng.normal() })
    }
}

/// With `maximumChecked`, finite differences are taken at that many elements of each input
/// (chosen by the seeded generator) instead of all of them, for inputs too large to sweep.
public func gradientCheck(
    _ inputs: [GradientCheckInput], seed: UInt64 = 7, step: Double = 1e-5, maximumChecked: Int? = nil,
    op: (Tape, [Tensor]) -> Tensor,
    reference: ([[Double]]) -> [Double]
) -> GradientCheckResult {
    let tensors = inputs.map { Tensor(shape: $0.shape, values: $0.values, requiresGrad: true) }
    let tape = Tape()
    let out = op(tape, tensors)
    var rng = RandomGenerator(seed: seed)
    let r = (0..<out.count).map { _ in rng.normal() }
    tape.backward(out, seed: r)

    let point = inputs.map { $0.values.map(Double.init) }
    let expected = reference(point)
    precondition(expected.count == out.count, "gradientCheck: reference gives \(expected.count) values, op \(out.count)")
    var forwardError = 0.0
    for (a, b) in zip(out.values, expected) { forwardError = max(forwardError, abs(Double(a) - b) / max(1, abs(b))) }

    func loss(_ x: [[Double]]) -> Double { zip(reference(x), r).reduce(0) { $0 + $1.0 * Double($1.1) } }
    var gradientError = 0.0
    for (i, tensor) in tensors.enumerated() {
        let analytic = tensor.gradValues
        var elements = Array(0..<tensor.count)
        if let maximumChecked, maximumChecked < elements.count {
            rng.shuffle(&elements)
            elements = Array(elements.prefix(maximumChecked))
        }
        for j in elements {
            var plus = point, minus = point
            plus[i][j] += step
            minus[i][j] -= step
            let numeric = (loss(plus) - loss(minus)) / (2 * step)
            gradientError = max(gradientError, abs(Double(analytic[j]) - numeric) / max(1, abs(numeric)))
        }
    }
    return GradientCheckResult(forwardError: forwardError, gradientError: gradientError)
}
