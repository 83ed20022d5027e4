// Multi-head scaled dot-product attention (Vaswani et al. 2017), the one implementation every
// Tessera transformer calls. Blocked over keys with an online softmax as in FlashAttention
// (Dao et al. 2022; FlashAttention-2, Dao 2023): the forward keeps only a query block × key
// block of scores and each row's log-sum-exp; the backward recomputes the scores from them.
// Blocks a mask excludes entirely are skipped, so causal attention costs about half of full.
//
// Layout: heads contiguous, (B, NH, T, HS). The key/value tensors may be longer than the keys
// in use (a KV cache preallocated to a maximum length): `keyHeadStride` is the distance
// between consecutive heads' first keys.
import Foundation
import TesseraKernels

/// Which keys each query may see. Query i stands at position `queryOffset + i` among the keys.
public enum AttentionMask: Equatable, Sendable {
    /// Every key.
    case full
    /// Keys at or before the query's position.
    case causal
    /// The first `length` positions see each other both ways; later ones are causal.
    case prefix(Int)
}

public struct AttentionShape: Equatable, Sendable {
    public var batch: Int
    public var heads: Int
    public var queryLength: Int
    public var keyLength: Int
    public var headSize: Int
    /// Position of query 0 among the keys: 0 for self-attention over a whole sequence,
    /// keyLength − queryLength when new queries follow cached keys.
    public var queryOffset: Int
    /// Floats between consecutive heads' first keys (and values); keyLength·headSize if packed.
    public var keyHeadStride: Int
    /// Flags between consecutive batch items' key-padding rows; keyLength if packed.
    public var keyPaddingStride: Int

    public init(batch: Int, heads: Int, queryLength: Int, keyLength: Int, headSize: Int,
                queryOffset: Int = 0, keyHeadStride: Int? = nil, keyPaddingStride: Int? = nil) {
        precondition(batch >= 0 && heads > 0 && queryLength >= 0 && keyLength >= 0 && headSize > 0,
                     "attention: B=\(batch) NH=\(heads) Tq=\(queryLength) Tk=\(keyLength) HS=\(headSize)")
        self.batch = batch
        self.heads = heads
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.headSize = headSize
        self.queryOffset = queryOffset
        self.keyHeadStride = keyHeadStride ?? keyLength * headSize
        self.keyPaddingStride = keyPaddingStride ?? keyLength
        precondition(self.keyHeadStride >= keyLength * headSize, "attention: key head stride \(self.keyHeadStride) < Tk·HS")
    }

    /// Keys [0, limit) may be seen by query row `i` (before key padding).
    @inline(__always)
    func keyLimit(_ i: Int, _ mask: AttentionMask) -> Int {
        let position = queryOffset + i
        switch mask {
        case .full: return keyLength
        case .causal: return max(0, min(keyLength, position + 1))
        case .prefix(let length): return max(0, min(keyLength, max(position + 1, length)))
        }
    }

    var scale: Float { 1 / Float(headSize).squareRoot() }
}

/// Rows of queries and columns of keys per block; both kernels take the same blocks.
public struct AttentionBlocks: Equatable, Sendable {
    public var queries: Int
    public var keys: Int
    public init(queries: Int = 64, keys: Int = 256) {
        precondition(queries > 0 && keys > 0, "attention blocks \(queries)×\(keys)")
        self.queries = queries
        self.keys = keys
    }
}

/// out = softmax(scale · Q·Kᵀ + mask) · V per head, and each row's log-sum-exp of the masked,
/// scaled scores (−∞ for a row with no visible key, whose output is 0).
public func attentionForward(
    _ out: UnsafeMutablePointer<Float>,        // (B, NH, Tq, HS)
    _ logSumExp: UnsafeMutablePointer<Float>,  // (B, NH, Tq)
    _ query: UnsafePointer<Float>,             // (B, NH, Tq, HS)
    _ key: UnsafePointer<Float>,               // (B, NH, Tk, HS), heads keyHeadStride apart
    _ value: UnsafePointer<Float>,             // (B, NH, Tk, HS), heads keyHeadStride apart
    keyPadding: UnsafePointer<Bool>?,          // (B, Tk), rows keyPaddingStride apart: true = padding
    shape s: AttentionShape, mask: AttentionMask, blocks: AttentionBlocks = AttentionBlocks()
) {
    let hs = s.headSize, bq = blocks.queries, bk = blocks.keys
    let queryBlocks = (s.queryLength + bq - 1) / bq
    Threads.parallelFor(s.batch * s.heads * queryBlocks) { range in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: bq * bk + 2 * bq) { scratch in
            let scores = scratch.baseAddress!             // (bq, bk)
            let rowMax = scores + bq * bk, rowSum = rowMax + bq  // (bq), (bq)
            for task in range {
                let head = task / queryBlocks, q0 = (task % queryBlocks) * bq
                let rows = min(bq, s.queryLength - q0)
                let b = head / s.heads
                let q = query + (head * s.queryLength + q0) * hs
                let o = out + (head * s.queryLength + q0) * hs
                let k = key + head * s.keyHeadStride, v = value + head * s.keyHeadStride
                let padding = keyPadding.map { $0 + b * s.keyPaddingStride }
                o.initialize(repeating: 0, count: rows * hs)
                rowMax.initialize(repeating: -.infinity, count: rows)
                rowSum.initialize(repeating: 0, count: rows)
                let blockLimit = s.keyLimit(q0 + rows - 1, mask)  // limits grow with the row
                var k0 = 0
                while k0 < blockLimit {
                    let cols = min(bk, blockLimit - k0)
                    maskedScores(scores, q, k, rows: rows, cols: cols, q0: q0, k0: k0, s, mask, padding)
                    for i in 0..<rows {
                        let row = scores + i * cols
                        let newMax = max(rowMax[i], maximum(row, cols))
                        guard newMax > -.infinity else {  // nothing visible yet in this row
                            row.update(repeating: 0, count: cols)
                            continue
                        }
                        let blockSum = exponentiate(row, cols, minus: newMax)  // masked: exactly 0
                        if rowMax[i] > -.infinity && rowMax[i] != newMax {  // rescale what came before
                            let correction = fastExp(rowMax[i] - newMax)
                            rowSum[i] *= correction
                            scaleRow(o + i * hs, correction, hs)
                        }
                        rowSum[i] += blockSum
                        rowMax[i] = newMax
                    }
                    // O (rows, HS) += P (rows, cols) · V[k0..] (cols, HS)
                    gemm(m: rows, n: hs, k: cols, a: scores, lda: cols, b: v + k0 * hs, beta: 1, c: o)
                    k0 += cols
                }
                let lse = logSumExp + head * s.queryLength + q0
                for i in 0..<rows {
                    if rowSum[i] > 0 {
                        scaleRow(o + i * hs, 1 / rowSum[i], hs)
                        lse[i] = rowMax[i] + log(rowSum[i])
                    } else {
                        (o + i * hs).update(repeating: 0, count: hs)
                        lse[i] = -.infinity
                    }
                }
            }
        }
    }
}

/// Adds the gradients of the forward above into dquery, dkey and dvalue (any may be nil).
public func attentionBackward(
    _ dquery: UnsafeMutablePointer<Float>?,    // (B, NH, Tq, HS)
    _ dkey: UnsafeMutablePointer<Float>?,      // (B, NH, Tk, HS), heads keyHeadStride apart
    _ dvalue: UnsafeMutablePointer<Float>?,    // (B, NH, Tk, HS), heads keyHeadStride apart
    _ dout: UnsafePointer<Float>,              // (B, NH, Tq, HS)
    _ query: UnsafePointer<Float>,
    _ key: UnsafePointer<Float>,
    _ value: UnsafePointer<Float>,
    _ out: UnsafePointer<Float>,               // the forward's output
    _ logSumExp: UnsafePointer<Float>,         // the forward's (B, NH, Tq)
    keyPadding: UnsafePointer<Bool>?,
    shape s: AttentionShape, mask: AttentionMask, blocks: AttentionBlocks = AttentionBlocks()
) {
    let hs = s.headSize, bq = blocks.queries, bk = blocks.keys
    // One task per head: it owns that head's dQ, dK and dV, so no two tasks write one float.
    Threads.parallelFor(s.batch * s.heads) { range in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * bq * bk + bq) { scratch in
            let probabilities = scratch.baseAddress!      // (bq, bk)
            let dscores = probabilities + bq * bk           // (bq, bk)
            let rowDot = dscores + bq * bk                  // (bq)
            for head in range {
                let b = head / s.heads
                let k = key + head * s.keyHeadStride, v = value + head * s.keyHeadStride
                let padding = keyPadding.map { $0 + b * s.keyPaddingStride }
                var q0 = 0
                while q0 < s.queryLength {
                    let rows = min(bq, s.queryLength - q0)
                    let offset = (head * s.queryLength + q0) * hs
                    let q = query + offset, dy = dout + offset, y = out + offset
                    let lse = logSumExp + head * s.queryLength + q0
                    // D_i = dO_i · O_i, the softmax backward's inner product
                    for i in 0..<rows { rowDot[i] = dot(dy + i * hs, y + i * hs, hs) }
                    let blockLimit = s.keyLimit(q0 + rows - 1, mask)
                    var k0 = 0
                    while k0 < blockLimit {
                        let cols = min(bk, blockLimit - k0)
                        maskedScores(probabilities, q, k, rows: rows, cols: cols, q0: q0, k0: k0, s, mask, padding)
                        for i in 0..<rows {
                            let row = probabilities + i * cols
                            let l = lse[i]
                            if l == -.infinity { row.update(repeating: 0, count: cols); continue }
                            _ = exponentiate(row, cols, minus: l)  // exp(−∞) is 0
                        }
                        if let dvalue {  // dV[k0..] (cols, HS) += Pᵀ · dO
                            gemm(transposeA: true, m: cols, n: hs, k: rows, a: probabilities, lda: cols, b: dy,
                                 beta: 1, c: dvalue + head * s.keyHeadStride + k0 * hs)
                        }
                        // dP (rows, cols) = dO · V[k0..]ᵀ, then dS = P ∘ (dP − D) · scale
                        gemm(transposeB: true, m: rows, n: cols, k: hs, a: dy, b: v + k0 * hs, c: dscores, ldc: cols)
                        for i in 0..<rows {
                            let p = probabilities + i * cols, ds = dscores + i * cols, d = rowDot[i]
                            for j in 0..<cols { ds[j] = p[j] * (ds[j] - d) * s.scale }
                        }
                        if let dquery {  // dQ (rows, HS) += dS · K[k0..]
                            gemm(m: rows, n: hs, k: cols, a: dscores, lda: cols, b: k + k0 * hs, beta: 1, c: dquery + offset)
                        }
                        if let dkey {  // dK[k0..] (cols, HS) += dSᵀ · Q
                            gemm(transposeA: true, m: cols, n: hs, k: rows, a: dscores, lda: cols, b: q,
                                 beta: 1, c: dkey + head * s.keyHeadStride + k0 * hs)
                        }
                        k0 += cols
                    }
                    q0 += rows
                }
            }
        }
    }
}

/// scores (rows, cols) = scale · Q[q0..] (rows, HS) · K[k0..]ᵀ (HS, cols), set to −∞ where the
/// mask or the key padding hides a key. The forward computes it once; the backward again.
@inline(__always)
private func maskedScores(
    _ scores: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>,
    rows: Int, cols: Int, q0: Int, k0: Int, _ s: AttentionShape, _ mask: AttentionMask,
    _ padding: UnsafePointer<Bool>?
) {
    gemm(transposeB: true, m: rows, n: cols, k: s.headSize, alpha: s.scale,
         a: q, b: k + k0 * s.headSize, c: scores, ldc: cols)
    for i in 0..<rows {
        let row = scores + i * cols
        let visible = max(0, min(cols, s.keyLimit(q0 + i, mask) - k0))
        if visible < cols { (row + visible).update(repeating: -.infinity, count: cols - visible) }
        if let padding {
            for j in 0..<visible where padding[k0 + j] { row[j] = -.infinity }
        }
    }
}

/// row[j] = e^(row[j] − shift) for j < count, returning their sum: one pass, eight lanes at once.
@inline(__always)
private func exponentiate(_ row: UnsafeMutablePointer<Float>, _ count: Int, minus shift: Float) -> Float {
    let c = Vec8(repeating: shift)
    var sums = Vec8()
    var j = 0
    while j + 8 <= count {
        let e = fastExpNonPositive(load8(row + j) - c)
        store8(e, row + j)
        sums += e
        j += 8
    }
    let half = sums.lowHalf + sums.highHalf
    var total = (half[0] + half[1]) + (half[2] + half[3])  // SIMD's sum() is a call per row
    if j < count {  // the last few, through the same function
        let e = fastExpNonPositive(loadPartial8(row + j, count - j) - c)
        for lane in 0..<count - j {
            row[j + lane] = e[lane]
            total += e[lane]
        }
    }
    return total
}

@inline(__always)
private func scaleRow(_ row: UnsafeMutablePointer<Float>, _ factor: Float, _ count: Int) {
    for j in 0..<count { row[j] *= factor }
}
