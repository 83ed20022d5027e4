// Element-wise kernels: GELU (tanh form), SiLU, ReLU, bias, and the arithmetic the tape needs.
// Forward and backward sit side by side; every backward ADDS into its input gradient (as in
// llm.c), so a tensor used twice needs no special case. Plain loops: LLVM vectorises them.

/// Elements per task below which splitting across threads costs more than it saves.
let elementwiseChunk = 1 << 15

// MARK: GELU, tanh approximation (Hendrycks & Gimpel 2016)
// 0.5·x·(1 + tanh(u)) with u = √(2/π)(x + 0.044715x³) equals x·σ(2u), one exp per element.

let geluScale: Float = 0.797_884_56  // √(2/π)
let geluCubic: Float = 0.044_715

public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range {
            let x = inp[i]
            let u = geluScale * x * Float(1).addingProduct(geluCubic, x * x)
            out[i] = x / (1 + fastExp(-2 * u))
        }
    }
}

public func geluBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ dout: UnsafePointer<Float>, _ count: Int
) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range {
            let x = inp[i], x2 = x * x
            let u = geluScale * x * Float(1).addingProduct(geluCubic, x2)
            let s = 1 / (1 + fastExp(-2 * u))  // σ(2u)
            let du = geluScale * Float(1).addingProduct(3 * geluCubic, x2)
            dinp[i] = dinp[i].addingProduct(dout[i], s.addingProduct(x * 2 * s * (1 - s), du))
        }
    }
}

// MARK: SiLU, x·σ(x)

public func siluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range {
            let x = inp[i]
            out[i] = x / (1 + fastExp(-x))
        }
    }
}

public func siluBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ dout: UnsafePointer<Float>, _ count: Int
) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range {
            let x = inp[i]
            let s = 1 / (1 + fastExp(-x))
            dinp[i] += dout[i] * s * (1 + x * (1 - s))
        }
    }
}

// MARK: ReLU

public func reluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { out[i] = Swift.max(inp[i], 0) }
    }
}

/// The gradient at exactly 0 is taken as 0.
public func reluBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    _ dout: UnsafePointer<Float>, _ count: Int
) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { dinp[i] += inp[i] > 0 ? dout[i] : 0 }
    }
}

// MARK: Bias over the last dimension, x (rows, C) + b (C)

public func biasForward(
    _ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, channels: Int
) {
    Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, channels))) { range in
        for r in range {
            let row = out + r * channels
            for c in 0..<channels { row[c] += bias[c] }
        }
    }
}

/// dbias (C) += Σ_rows dout (rows, C). Threads split the channels, so no two write one sum.
public func biasBackward(
    _ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, channels: Int
) {
    Threads.parallelFor(channels, minimumChunk: 64) { range in
        for r in 0..<rows {
            let row = dout + r * channels
            for c in range { dbias[c] += row[c] }
        }
    }
}

/// Per-channel bias of a (B, C, S) tensor: out[b, c, s] += bias[c].
public func channelBiasForward(
    _ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>,
    batch: Int, channels: Int, spatial: Int
) {
    Threads.parallelFor(batch * channels, minimumChunk: max(1, elementwiseChunk / max(1, spatial))) { range in
        for plane in range {
            let b = bias[plane % channels]
            let p = out + plane * spatial
            for s in 0..<spatial { p[s] += b }
        }
    }
}

/// dbias[c] += Σ_{b,s} dout[b, c, s].
public func channelBiasBackward(
    _ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
    batch: Int, channels: Int, spatial: Int
) {
    Threads.parallelFor(channels, minimumChunk: 1) { range in
        for c in range {
            var total: Float = 0
            for b in 0..<batch { total += sum(dout + (b * channels + c) * spatial, spatial) }
            dbias[c] += total
        }
    }
}

// MARK: Arithmetic

/// y[i] += alpha · x[i].
public func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, _ count: Int) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { y[i] += alpha * x[i] }
    }
}

/// out[i] = a[i] + alpha · b[i].
public func addScaled(
    _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ alpha: Float,
    _ b: UnsafePointer<Float>, _ count: Int
) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { out[i] = a[i] + alpha * b[i] }
    }
}

/// out[i] = a[i] · b[i].
public func multiply(
    _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int
) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { out[i] = a[i] * b[i] }
    }
}

/// dinp[i] += dout[i] · other[i]: the backward of a product with respect to one factor.
public func multiplyAccumulate(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ other: UnsafePointer<Float>, _ count: Int
) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { dinp[i] += dout[i] * other[i] }
    }
}

/// out[i] = alpha · x[i].
public func scale(_ out: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, _ count: Int) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { out[i] = alpha * x[i] }
    }
}

/// y[i] += value.
public func addScalar(_ y: UnsafeMutablePointer<Float>, _ value: Float, _ count: Int) {
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range { y[i] += value }
    }
}

// MARK: Swapping the middle two axes, (A, B, C, D) → (A, C, B, D)
// Splits (B, T, NH·HS) into heads (B, NH, T, HS) and merges them back.

public func swapMiddleAxesForward(
    _ out: UnsafeMutablePointer<Float>,  // (A, C, B, D)
    _ inp: UnsafePointer<Float>,         // (A, B, C, D)
    _ a: Int, _ b: Int, _ c: Int, _ d: Int
) {
    Threads.parallelFor(a * b, minimumChunk: max(1, elementwiseChunk / max(1, c * d))) { range in
        for ab in range {
            let (i, j) = (ab / b, ab % b)
            for k in 0..<c { (out + ((i * c + k) * b + j) * d).update(from: inp + (ab * c + k) * d, count: d) }
        }
    }
}

/// dinp (A, B, C, D) += dout (A, C, B, D) with the axes swapped back.
public func swapMiddleAxesBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ a: Int, _ b: Int, _ c: Int, _ d: Int
) {
    Threads.parallelFor(a * b, minimumChunk: max(1, elementwiseChunk / max(1, c * d))) { range in
        for ab in range {
            let (i, j) = (ab / b, ab % b)
            for k in 0..<c {
                let dst = dinp + (ab * c + k) * d, src = dout + ((i * c + k) * b + j) * d
                for e in 0..<d { dst[e] += src[e] }
            }
        }
    }
}
