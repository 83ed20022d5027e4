// A model's trainable parameters as an ordered list of named tensors. The names are the
// checkpoint keys, declared as string literals by the layer that owns each parameter.
import TesseraKernels

public enum Initializer: Sendable {
    case zeros
    case ones
    /// Normal with mean 0 and the given standard deviation.
    case normal(std: Float)
    /// Uniform on [−bound, bound).
    case uniform(bound: Float)
}

public final class ParameterStore {
    public struct Entry {
        public let name: String
        public let tensor: Tensor
        /// Whether AdamW's weight decay applies (matrices yes; biases, norms, embeddings no).
        public let decays: Bool
    }

    public private(set) var entries: [Entry] = []
    private var index: [String: Int] = [:]

    public init() {}

    /// Declares a parameter; names are unique within a store.
    @discardableResult
    public func add(_ name: String, shape: [Int], _ initializer: Initializer, decays: Bool,
                    rng: inout RandomGenerator) -> Tensor {
        precondition(index[name] == nil, "ParameterStore: \(name) declared twice")
        let tensor = Tensor(shape: shape, requiresGrad: true)
        switch initializer {
        case .zeros: break
        case .ones: tensor.data.update(repeating: 1, count: tensor.count)
        case .normal(let std): rng.fillNormal(tensor.data, count: tensor.count, std: std)
        case .uniform(let bound): rng.fillUniform(tensor.data, count: tensor.count, low: -bound, high: bound)
        }
        index[name] = entries.count
        entries.append(Entry(name: name, tensor: tensor, decays: decays))
        return tensor
    }

    public subscript(name: String) -> Tensor? { index[name].map { entries[$0].tensor } }

    /// Total number of scalars.
    public var scalarCount: Int { entries.reduce(0) { $0 + $1.tensor.count } }

    public func zeroGrads() { entries.forEach { $0.tensor.zeroGrad() } }

    /// √(Σ g²) over every parameter's gradient.
    public func gradientNorm() -> Float {
        var total: Double = 0
        for entry in entries where entry.tensor.hasGrad {
            total += Double(sumOfSquares(entry.tensor.grad, entry.tensor.count))
        }
        return Float(total.squareRoot())
    }
}
