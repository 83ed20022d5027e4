// Softmax over the last dimension, and softmax fused with cross-entropy: the logits' softmax
// is never stored, only each row's log-sum-exp, from which the backward recomputes it.
import Foundation

public func softmaxForward(
    _ out: UnsafeMutablePointer<Float>,  // (rows, C)
    _ inp: UnsafePointer<Float>,         // (rows, C)
    rows: Int, columns: Int
) {
    Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, columns))) { range in
        for r in range {
            let x = inp + r * columns, y = out + r * columns
            let m = maximum(x, columns)
            for c in 0..<columns { y[c] = fastExp(x[c] - m) }
            let inverse = 1 / sum(y, columns)
            for c in 0..<columns { y[c] *= inverse }
        }
    }
}

/// dinp += y ⊙ (dy − Σ dy·y), row by row.
public func softmaxBackward(
    _ dinp: UnsafeMutablePointer<Float>,  // (rows, C)
    _ out: UnsafePointer<Float>,          // (rows, C), the forward's output
    _ dout: UnsafePointer<Float>,         // (rows, C)
    rows: Int, columns: Int
) {
    Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, columns))) { range in
        for r in range {
            let y = out + r * columns, dy = dout + r * columns, dx = dinp + r * columns
            let inner = dot(dy, y, columns)
            for c in 0..<columns { dx[c] += y[c] * (dy[c] - inner) }
        }
    }
}

/// log Σ exp x[c] over one row, stable for large logits.
@inline(__always)
func logSumExp(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    let m = maximum(x, count)
    let shift = Vec8(repeating: m)
    var acc0 = Vec8(), acc1 = Vec8()
    var i = 0
    while i + 16 <= count {
        acc0 += fastExpNonPositive(load8(x + i) - shift)
        acc1 += fastExpNonPositive(load8(x + i + 8) - shift)
        i += 16
    }
    while i + 8 <= count { acc0 += fastExpNonPositive(load8(x + i) - shift); i += 8 }
    // The tail's padding lanes hold −∞, whose exponential is exactly 0.
    acc1 += fastExpNonPositive(loadPartial8(x + i, count - i, fill: -.infinity) - shift)
    return m + log((acc0 + acc1).sum())
}

/// Cross-entropy of each row against its target class, weighted:
/// returns Σ_r weight[r]·(lse_r − logits[r, target_r]), where rows whose target equals
/// `ignoreIndex` count zero and weight is 1 when `weights` is nil. Stores each row's
/// log-sum-exp for the backward (0 for ignored rows).
public func crossEntropyForward(
    _ logSumExps: UnsafeMutablePointer<Float>,  // (rows)
    _ logits: UnsafePointer<Float>,             // (rows, V)
    _ targets: UnsafePointer<Int32>,            // (rows)
    _ weights: UnsafePointer<Float>?,           // (rows) or nil
    rows: Int, classes: Int, ignoreIndex: Int32 = -1
) -> Double {
    var total: Double = 0
    // Rows are independent; a serial sum of the per-row terms keeps the result bit-stable.
    Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, classes))) { range in
        for r in range {
            let t = targets[r]
            if t == ignoreIndex { logSumExps[r] = 0; continue }
            precondition(t >= 0 && Int(t) < classes, "crossEntropy: target \(t) outside 0..<\(classes) at row \(r)")
            logSumExps[r] = logSumExp(logits + r * classes, classes)
        }
    }
    for r in 0..<rows where targets[r] != ignoreIndex {
        let w = weights?[r] ?? 1
        total += Double(w) * Double(logSumExps[r] - logits[r * classes + Int(targets[r])])
    }
    return total
}

/// dlogits[r] += dloss·weight[r]·(softmax(logits[r]) − onehot(target_r)).
public func crossEntropyBackward(
    _ dlogits: UnsafeMutablePointer<Float>,  // (rows, V)
    _ logits: UnsafePointer<Float>,          // (rows, V)
    _ logSumExps: UnsafePointer<Float>,      // (rows)
    _ targets: UnsafePointer<Int32>,         // (rows)
    _ weights: UnsafePointer<Float>?,        // (rows) or nil
    dloss: Float, rows: Int, classes: Int, ignoreIndex: Int32 = -1
) {
    Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, classes))) { range in
        for r in range {
            let t = targets[r]
            if t == ignoreIndex { continue }
            let g = dloss * (weights?[r] ?? 1)
            let x = logits + r * classes, dx = dlogits + r * classes
            let lse = logSumExps[r]
            for c in 0..<classes { dx[c] += g * fastExp(x[c] - lse) }
            dx[Int(t)] -= g
        }
    }
}
