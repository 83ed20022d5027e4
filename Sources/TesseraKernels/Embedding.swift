// Embedding lookup (rows of a table picked by id) and its backward, a scatter-add.

public func embeddingForward(
    _ out: UnsafeMutablePointer<Float>,  // (N, C)
    _ table: UnsafePointer<Float>,       // (V, C)
    _ ids: UnsafePointer<Int32>,         // (N)
    count: Int, vocabulary: Int, channels: Int
) {
    Threads.parallelFor(count, minimumChunk: max(1, elementwiseChunk / max(1, channels))) { range in
        for i in range {
            let id = Int(ids[i])
            precondition(id >= 0 && id < vocabulary, "embedding: id \(id) outside 0..<\(vocabulary) at \(i)")
            (out + i * channels).update(from: table + id * channels, count: channels)
        }
    }
}

/// dtable[ids[i]] += dout[i]. Threads split the channels, so two equal ids never race.
public func embeddingBackward(
    _ dtable: UnsafeMutablePointer<Float>,  // (V, C)
    _ dout: UnsafePointer<Float>,           // (N, C)
    _ ids: UnsafePointer<Int32>,            // (N)
    count: Int, channels: Int
) {
    Threads.parallelFor(channels, minimumChunk: 64) { range in
        for i in 0..<count {
            let row = dtable + Int(ids[i]) * channels, d = dout + i * channels
            for c in range { row[c] += d[c] }
        }
    }
}
