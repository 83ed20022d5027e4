// The key/value cache for incremental decoding: per layer, keys and values preallocated to a
// maximum length in the attention layout (B, NH, maxLength, HS). New positions are appended;
// new queries then attend over everything cached. This is what makes sampling one token at a
// time cost O(T) per token instead of O(T²).
import TesseraKernels

public final class KVCache {
    public let layers: Int
    public let batch: Int
    public let heads: Int
    public let maximumLength: Int
    public let headSize: Int
    /// Positions cached so far, per layer.
    public private(set) var lengths: [Int]
    private let keys: UnsafeMutablePointer<Float>    // (layers, B, NH, maxLength, HS)
    private let values: UnsafeMutablePointer<Float>  // (layers, B, NH, maxLength, HS)

    public init(layers: Int, batch: Int, heads: Int, maximumLength: Int, headSize: Int) {
        precondition(layers > 0 && batch > 0 && heads > 0 && maximumLength > 0 && headSize > 0,
                     "KVCache: layers \(layers) B \(batch) NH \(heads) T \(maximumLength) HS \(headSize)")
        self.layers = layers
        self.batch = batch
        self.heads = heads
        self.maximumLength = maximumLength
        self.headSize = headSize
        lengths = [Int](repeating: 0, count: layers)
        let count = layers * batch * heads * maximumLength * headSize
        keys = .allocate(capacity: count)
        values = .allocate(capacity: count)
        keys.initialize(repeating: 0, count: count)
        values.initialize(repeating: 0, count: count)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Forgets every cached position (the memory is kept).
    public func reset() { lengths = lengths.map { _ in 0 } }

    private var layerSize: Int { batch * heads * maximumLength * headSize }

    /// Appends `count` new positions to `layer`: key and value are (B, NH, count, HS).
    public func append(layer: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>, count: Int) {
        precondition(layer >= 0 && layer < layers, "KVCache: layer \(layer) of \(layers)")
        precondition(lengths[layer] + count <= maximumLength,
                     "KVCache: \(lengths[layer]) + \(count) positions exceed the maximum \(maximumLength)")
        let start = lengths[layer]
        for head in 0..<batch * heads {
            let destination = head * maximumLength * headSize + start * headSize
            (keys + layer * layerSize + destination).update(from: key + head * count * headSize, count: count * headSize)
            (values + layer * layerSize + destination).update(from: value + head * count * headSize, count: count * headSize)
        }
        lengths[layer] += count
    }

    /// Attends `queryLength` queries (B, NH, Tq, HS), the last Tq cached positions of `layer`,
    /// over every cached key of that layer: out (B, NH, Tq, HS). `keyPadding` is
    /// (B, maximumLength), true where a cached position is padding.
    public func attend(
        layer: Int, query: UnsafePointer<Float>, queryLength: Int, out: UnsafeMutablePointer<Float>,
        logSumExp: UnsafeMutablePointer<Float>, mask: AttentionMask = .causal,
        keyPadding: UnsafePointer<Bool>? = nil
    ) {
        let length = lengths[layer]
        precondition(queryLength <= length, "KVCache: \(queryLength) queries but only \(length) cached positions")
        let shape = AttentionShape(batch: batch, heads: heads, queryLength: queryLength, keyLength: length,
                                   headSize: headSize, queryOffset: length - queryLength,
                                   keyHeadStride: maximumLength * headSize, keyPaddingStride: maximumLength)
        attentionForward(out, logSumExp, query, keys + layer * layerSize, values + layer * layerSize,
                         keyPadding: keyPadding, shape: shape, mask: mask)
    }
}
