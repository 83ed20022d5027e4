// The conditioning kernels of a DiT block (Peebles & Xie 2023, adaLN-Zero): each item's
// conditioning vector shifts and scales every row of that item's normalised activations, and
// gates a residual branch. Forward and backward side by side; backward ADDS into gradients.

/// out[b, t, :] = x[b, t, :] ⊙ (1 + scale[b, :]) + shift[b, :] for x, out (B, T, C) and
/// shift, scale (B, C).
public func modulateForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    _ shift: UnsafePointer<Float>, _ scale: UnsafePointer<Float>,
    batch: Int, time: Int, channels: Int
) {
    Threads.parallelFor(batch * time, minimumChunk: max(1, elementwiseChunk / max(1, channels))) { rows in
        for row in rows {
            let b = row / time
            let xr = x + row * channels, o = out + row * channels
            let sh = shift + b * channels, sc = scale + b * channels
            for c in 0..<channels { o[c] = xr[c].addingProduct(xr[c], sc[c]) + sh[c] }
        }
    }
}

/// dx += dout ⊙ (1 + scale); dshift[b] += Σ_t dout[b, t]; dscale[b] += Σ_t dout[b, t] ⊙ x[b, t].
public func modulateBackward(
    _ dx: UnsafeMutablePointer<Float>?, _ dshift: UnsafeMutablePointer<Float>?, _ dscale: UnsafeMutablePointer<Float>?,
    _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ scale: UnsafePointer<Float>,
    batch: Int, time: Int, channels: Int
) {
    Threads.parallelFor(batch) { items in  // one item per task: the sums over t stay in one thread
        for b in items {
            let sc = scale + b * channels
            for t in 0..<time {
                let row = (b * time + t) * channels
                let g = dout + row, xr = x + row
                if let dx { for c in 0..<channels { dx[row + c] = dx[row + c].addingProduct(g[c], 1 + sc[c]) } }
                if let dshift { for c in 0..<channels { dshift[b * channels + c] += g[c] } }
                if let dscale { for c in 0..<channels { dscale[b * channels + c] = dscale[b * channels + c].addingProduct(g[c], xr[c]) } }
            }
        }
    }
}

/// out[b, t, :] = x[b, t, :] ⊙ gate[b, :] for x, out (B, T, C) and gate (B, C).
public func gateForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ gate: UnsafePointer<Float>,
    batch: Int, time: Int, channels: Int
) {
    Threads.parallelFor(batch * time, minimumChunk: max(1, elementwiseChunk / max(1, channels))) { rows in
        for row in rows {
            let xr = x + row * channels, o = out + row * channels, g = gate + (row / time) * channels
            for c in 0..<channels { o[c] = xr[c] * g[c] }
        }
    }
}

/// dx += dout ⊙ gate; dgate[b] += Σ_t dout[b, t] ⊙ x[b, t].
public func gateBackward(
    _ dx: UnsafeMutablePointer<Float>?, _ dgate: UnsafeMutablePointer<Float>?,
    _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ gate: UnsafePointer<Float>,
    batch: Int, time: Int, channels: Int
) {
    Threads.parallelFor(batch) { items in
        for b in items {
            let g = gate + b * channels
            for t in 0..<time {
                let row = (b * time + t) * channels
                let d = dout + row, xr = x + row
                if let dx { for c in 0..<channels { dx[row + c] = dx[row + c].addingProduct(d[c], g[c]) } }
                if let dgate { for c in 0..<channels { dgate[b * channels + c] = dgate[b * channels + c].addingProduct(d[c], xr[c]) } }
            }
        }
    }
}
