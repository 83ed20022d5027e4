// A float32 tensor: a shape over a buffer it owns or shares (a reshape shares), and a
// gradient buffer created zero-filled on first use. Reference semantics, so the tape's
// backward steps write into the very tensors the model holds.

/// Raw float memory, owned, or a view that keeps its owner alive.
public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let owner: Storage?

    /// `count` floats, zero-initialised unless `zeroed` is false: then their values are whatever
    /// the allocator returned (NaN while `poisonUnfilled` is set), for a kernel that writes every
    /// one of them before anything reads them.
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "Storage: negative count \(count)")
        pointer = .allocate(capacity: max(1, count))
        if zeroed || Storage.poisonUnfilled {
            pointer.initialize(repeating: zeroed ? 0 : .nan, count: max(1, count))
        }
        self.count = count
        owner = nil
    }

    /// Tests set this to fill unzeroed storage with NaN, so an op that reads what it did not
    /// write shows up as NaN instead of passing on a lucky zero.
    nonisolated(unsafe) public static var poisonUnfilled = false

    /// The floats [offset, offset + count) of `owner`.
    public init(viewOf owner: Storage, offset: Int = 0, count: Int) {
        precondition(offset >= 0 && offset + count <= owner.count,
                     "Storage: view [\(offset), \(offset + count)) outside \(owner.count) floats")
        pointer = owner.pointer + offset
        self.count = count
        self.owner = owner
    }

    deinit {
        if owner == nil { pointer.deallocate() }
    }
}

public final class Tensor {
    public let shape: [Int]
    public let count: Int
    public let storage: Storage
    private var gradientStorage: Storage?
    /// Whether ops record a backward step for this tensor.
    public var requiresGrad: Bool

    /// A zero-filled tensor.
    public init(shape: [Int], requiresGrad: Bool = false) {
        self.shape = shape
        count = Tensor.elementCount(shape)
        storage = Storage(count: count)
        self.requiresGrad = requiresGrad
    }

    /// A tensor whose values are not zero-filled: for an op's output that its kernel overwrites.
    public init(unfilledShape shape: [Int], requiresGrad: Bool = false) {
        self.shape = shape
        count = Tensor.elementCount(shape)
        storage = Storage(count: count, zeroed: false)
        self.requiresGrad = requiresGrad
    }

    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        self.init(shape: shape, requiresGrad: requiresGrad)
        precondition(values.count == count, "Tensor: \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A tensor of a new shape over the same values (no copy).
    public init(shape: [Int], sharingValuesOf other: Tensor, requiresGrad: Bool) {
        let count = Tensor.elementCount(shape)
        precondition(count == other.count, "reshape: \(other.shape) has \(other.count) elements, \(shape) needs \(count)")
        self.shape = shape
        self.count = count
        storage = Storage(viewOf: other.storage, count: count)
        self.requiresGrad = requiresGrad
    }

    static func elementCount(_ shape: [Int]) -> Int {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        return shape.reduce(1, *)
    }

    public var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// The gradient buffer, zero-filled when first asked for.
    public var grad: UnsafeMutablePointer<Float> {
        if let gradientStorage { return gradientStorage.pointer }
        let created = Storage(count: count)
        gradientStorage = created
        return created.pointer
    }

    public var hasGrad: Bool { gradientStorage != nil }

    /// Where a kernel computing C = product + beta·C puts this tensor's gradient: the first
    /// contribution gets a new unfilled buffer and beta 0 (it overwrites), later ones beta 1
    /// (they accumulate), so the usual zero fill of a new gradient is skipped.
    public var gradientTarget: (pointer: UnsafeMutablePointer<Float>, beta: Float) {
        if let gradientStorage { return (gradientStorage.pointer, 1) }
        let created = Storage(count: count, zeroed: false)
        gradientStorage = created
        return (created.pointer, 0)
    }

    /// The gradient buffer when this tensor needs one, else nil (backward kernels skip it).
    public var gradIfRequired: UnsafeMutablePointer<Float>? { requiresGrad ? grad : nil }

    public func zeroGrad() {
        gradientStorage?.pointer.update(repeating: 0, count: count)
    }

    /// The values, copied out.
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The gradient, copied out (zeros if none was made).
    public var gradValues: [Float] {
        guard let gradientStorage else { return [Float](repeating: 0, count: count) }
        return Array(UnsafeBufferPointer(start: gradientStorage.pointer, count: count))
    }

    /// The value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements")
        return data[0]
    }

    /// The last dimension (channels), and the number of rows before it.
    var lastDimension: Int { shape.last ?? 1 }
    var rows: Int { lastDimension == 0 ? 0 : count / lastDimension }
}
