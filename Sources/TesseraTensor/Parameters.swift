// A model's trainable parameters as an ordered list of named tensors. The names are the
// checkpoint keys, declared as string literals by the layer that owns each parameter.
import TesseraKernels

public enum Initializer: Sendable {
    case zeros
    case ones
    /// Every element the given value.
    case constant(Float)
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
    /// The store whose values this one shares (a replica for data-parallel training).
    private let source: ParameterStore?

    public init() { source = nil }

    /// A replica: each parameter a model declares here shares the values of the parameter of
    /// the same name in `source` (so updates there are seen here) but has its own gradient.
    public init(mirroring source: ParameterStore) { self.source = source }

    /// Declares a parameter; names are unique within a store.
    @discardableResult
    public func add(_ name: String, shape: [Int], _ initializer: Initializer, decays: Bool,
                    rng: inout RandomGenerator) -> Tensor {
        precondition(index[name] == nil, "ParameterStore: \(name) declared twice")
        if let source {
            guard let original = source[name], original.shape == shape else {
                preconditionFailure("ParameterStore replica: \(name) \(shape) is not in the source store")
            }
            index[name] = entries.count
            let shared = Tensor(shape: shape, sharingValuesOf: original, requiresGrad: true)
            entries.append(Entry(name: name, tensor: shared, decays: decays))
            return shared
        }
        let tensor = Tensor(shape: shape, requiresGrad: true)
        switch initializer {
        case .zeros: break
        case .ones: tensor.data.update(repeating: 1, count: tensor.count)
        case .constant(let value): tensor.data.update(repeating: value, count: tensor.count)
        case .normal(let std): rng.fillNormal(tensor.data, count: tensor.count, std: std)
        case .uniform(let bound): rng.fillUniform(tensor.data, count: tensor.count, low: -bound, high: bound)
        }
        index[name] = entries.count
        entries.append(Entry(name: name, tensor: tensor, decays: decays))
        return tensor
    }

    /// A store of the same tensors (not copies) whose names pass `include`, in order: what an
    /// optimiser over part of a model is given.
    public func subset(where include: (String) -> Bool) -> ParameterStore {
        let part = ParameterStore()
        for entry in entries where include(entry.name) {
            part.index[entry.name] = part.entries.count
            part.entries.append(entry)
        }
        return part
    }

    public subscript(name: String) -> Tensor? { index[name].map { entries[$0].tensor } }

    /// Total number of scalars.
    public var scalarCount: Int { entries.reduce(0) { $0 + $1.tensor.count } }

    public func zeroGrads() { entries.forEach { $0.tensor.zeroGrad() } }

    /// Adds each replica's gradients into this store's (same names, same order).
    public func accumulateGradients(from replicas: [ParameterStore]) {
        for replica in replicas {
            precondition(replica.entries.map(\.name) == entries.map(\.name), "accumulateGradients: the stores differ")
        }
        for (i, entry) in entries.enumerated() {
            for replica in replicas where replica.entries[i].tensor.hasGrad {
                axpy(entry.tensor.grad, 1, replica.entries[i].tensor.grad, entry.tensor.count)
            }
        }
    }

    /// √(Σ g²) over every parameter's gradient.
    public func gradientNorm() -> Float {
        var total: Double = 0
        for entry in entries where entry.tensor.hasGrad {
            total += Double(sumOfSquares(entry.tensor.grad, entry.tensor.count))
        }
        return Float(total.squareRoot())
    }
}
