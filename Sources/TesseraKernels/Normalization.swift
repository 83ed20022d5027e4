// Layer norm over the last dimension (Ba et al. 2016) and group norm over channel groups of
// an NCHW tensor (Wu & He 2018). Forward saves the mean and 1/σ per normalised group; the
// backward reuses them. Backward ADDS into dinp, dweight and dbias; a nil gradient is skipped.

/// Σ a[i]·b[i]·(x[i] − center), the reduction both norms' backward passes need.
@inline(__always)
func productDeviationSum(
    _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
    center: Float, _ count: Int
) -> Float {
    let c = Vec16(repeating: center)
    var acc = Vec16()
    var i = 0
    while i + 16 <= count {
        acc += load16(a + i) * load16(b + i) * (load16(x + i) - c)
        i += 16
    }
    let n = count - i
    acc += loadPartial16(a + i, n) * loadPartial16(b + i, n) * (loadPartial16(x + i, n, fill: center) - c)
    return acc.sum()
}

// MARK: Layer norm, x (rows, C)

public func layerNormForward(
    _ out: UnsafeMutablePointer<Float>,    // (rows, C)
    _ mean: UnsafeMutablePointer<Float>,   // (rows)
    _ rstd: UnsafeMutablePointer<Float>,   // (rows)
    _ inp: UnsafePointer<Float>,           // (rows, C)
    _ weight: UnsafePointer<Float>,        // (C)
    _ bias: UnsafePointer<Float>,          // (C)
    rows: Int, channels: Int, epsilon: Float = 1e-5
) {
    Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, channels))) { range in
        for r in range {
            let x = inp + r * channels, y = out + r * channels
            let m = sum(x, channels) / Float(channels)
            let variance = sumOfSquares(x, channels, center: m) / Float(channels)
            let s = 1 / (variance + epsilon).squareRoot()
            for c in 0..<channels { y[c] = (x[c] - m) * s * weight[c] + bias[c] }
            mean[r] = m
            rstd[r] = s
        }
    }
}

public func layerNormBackward(
    _ dinp: UnsafeMutablePointer<Float>?,     // (rows, C)
    _ dweight: UnsafeMutablePointer<Float>?,  // (C)
    _ dbias: UnsafeMutablePointer<Float>?,    // (C)
    _ dout: UnsafePointer<Float>,            // (rows, C)
    _ inp: UnsafePointer<Float>,             // (rows, C)
    _ weight: UnsafePointer<Float>,          // (C)
    _ mean: UnsafePointer<Float>,            // (rows)
    _ rstd: UnsafePointer<Float>,            // (rows)
    rows: Int, channels: Int
) {
    let inverseC = 1 / Float(channels)
    if let dinp {
        Threads.parallelFor(rows, minimumChunk: max(1, elementwiseChunk / max(1, channels))) { range in
            for r in range {
                let x = inp + r * channels, dy = dout + r * channels, dx = dinp + r * channels
                let m = mean[r], s = rstd[r]
                // With n = (x − m)·s and g = w·dy: dx = s·(g − mean(g) − n·mean(g·n)).
                let meanG = dot(weight, dy, channels) * inverseC
                let meanGN = productDeviationSum(weight, dy, x, center: m, channels) * s * inverseC
                for c in 0..<channels {
                    let n = (x[c] - m) * s
                    dx[c] += (weight[c] * dy[c] - meanG - n * meanGN) * s
                }
            }
        }
    }
    if dweight == nil && dbias == nil { return }
    // Parameter gradients sum over rows; threads split the channels instead.
    Threads.parallelFor(channels, minimumChunk: 64) { range in
        for r in 0..<rows {
            let x = inp + r * channels, dy = dout + r * channels
            let m = mean[r], s = rstd[r]
            if let dweight { for c in range { dweight[c] += dy[c] * (x[c] - m) * s } }
            if let dbias { for c in range { dbias[c] += dy[c] } }
        }
    }
}

// MARK: Group norm, x (B, C, S) with S = H·W, G groups of C/G channels

public func groupNormForward(
    _ out: UnsafeMutablePointer<Float>,    // (B, C, S)
    _ mean: UnsafeMutablePointer<Float>,   // (B, G)
    _ rstd: UnsafeMutablePointer<Float>,   // (B, G)
    _ inp: UnsafePointer<Float>,           // (B, C, S)
    _ weight: UnsafePointer<Float>,        // (C)
    _ bias: UnsafePointer<Float>,          // (C)
    batch: Int, channels: Int, spatial: Int, groups: Int, epsilon: Float = 1e-5
) {
    precondition(groups > 0 && channels % groups == 0, "groupNorm: C=\(channels) not divisible by G=\(groups)")
    let perGroup = channels / groups, blockSize = perGroup * spatial
    Threads.parallelFor(batch * groups) { range in
        for block in range {
            let x = inp + block * blockSize, y = out + block * blockSize
            let m = sum(x, blockSize) / Float(blockSize)
            let s = 1 / (sumOfSquares(x, blockSize, center: m) / Float(blockSize) + epsilon).squareRoot()
            let firstChannel = (block % groups) * perGroup
            for j in 0..<perGroup {
                let w = weight[firstChannel + j] * s, b = bias[firstChannel + j]
                let xc = x + j * spatial, yc = y + j * spatial
                for i in 0..<spatial { yc[i] = (xc[i] - m) * w + b }
            }
            mean[block] = m
            rstd[block] = s
        }
    }
}

public func groupNormBackward(
    _ dinp: UnsafeMutablePointer<Float>?,     // (B, C, S)
    _ dweight: UnsafeMutablePointer<Float>?,  // (C)
    _ dbias: UnsafeMutablePointer<Float>?,    // (C)
    _ dout: UnsafePointer<Float>,            // (B, C, S)
    _ inp: UnsafePointer<Float>,             // (B, C, S)
    _ weight: UnsafePointer<Float>,          // (C)
    _ mean: UnsafePointer<Float>,            // (B, G)
    _ rstd: UnsafePointer<Float>,            // (B, G)
    batch: Int, channels: Int, spatial: Int, groups: Int
) {
    let perGroup = channels / groups, blockSize = perGroup * spatial
    let inverseN = 1 / Float(blockSize)
    if let dinp {
        Threads.parallelFor(batch * groups) { range in
            for block in range {
                let x = inp + block * blockSize, dy = dout + block * blockSize, dx = dinp + block * blockSize
                let m = mean[block], s = rstd[block]
                let firstChannel = (block % groups) * perGroup
                var sumG: Float = 0, sumGN: Float = 0
                for j in 0..<perGroup {
                    let w = weight[firstChannel + j]
                    sumG += w * sum(dy + j * spatial, spatial)
                    sumGN += w * s * dotDeviation(dy + j * spatial, x + j * spatial, center: m, spatial)
                }
                let meanG = sumG * inverseN, meanGN = sumGN * inverseN
                for j in 0..<perGroup {
                    let w = weight[firstChannel + j]
                    let xc = x + j * spatial, dyc = dy + j * spatial, dxc = dx + j * spatial
                    for i in 0..<spatial {
                        let n = (xc[i] - m) * s
                        dxc[i] += (w * dyc[i] - meanG - n * meanGN) * s
                    }
                }
            }
        }
    }
    if dweight == nil && dbias == nil { return }
    Threads.parallelFor(channels) { range in
        for c in range {
            let g = c / perGroup
            var dw: Float = 0, db: Float = 0
            for b in 0..<batch {
                let offset = (b * channels + c) * spatial
                let m = mean[b * groups + g], s = rstd[b * groups + g]
                if dweight != nil { dw += s * dotDeviation(dout + offset, inp + offset, center: m, spatial) }
                if dbias != nil { db += sum(dout + offset, spatial) }
            }
            dweight?[c] += dw
            dbias?[c] += db
        }
    }
}

/// Σ a[i]·(x[i] − center).
@inline(__always)
func dotDeviation(_ a: UnsafePointer<Float>, _ x: UnsafePointer<Float>, center: Float, _ count: Int) -> Float {
    let c = Vec16(repeating: center)
    var acc = Vec16()
    var i = 0
    while i + 16 <= count {
        acc += load16(a + i) * (load16(x + i) - c)
        i += 16
    }
    let n = count - i
    acc += loadPartial16(a + i, n) * (loadPartial16(x + i, n, fill: center) - c)
    return acc.sum()
}
