// Vector quantization as one tape op (VQ-VAE, van den Oord et al. 2017): each position of an
// NCHW latent takes its nearest codebook vector; the gradient passes straight through to the
// encoder, and the codebook and commitment losses come out of the same op.
import Foundation
import TesseraKernels

extension Tape {
    /// z (B, C, h, w) against codebook (K, C): the quantized latent (B, C, h, w), whose gradient
    /// goes straight through to z; each position's code (B·h·w, row-major over b, y, x); and
    /// the loss codebookWeight · mean(‖e − sg(z)‖²) + commitmentWeight · mean(‖z − sg(e)‖²).
    public func vectorQuantize(_ z: Tensor, codebook: Tensor, codebookWeight: Float = 1, commitmentWeight: Float = 0.25)
        -> (quantized: Tensor, codes: [Int32], loss: Tensor) {
        precondition(z.shape.count == 4 && codebook.shape.count == 2 && codebook.shape[1] == z.shape[1],
                     "vectorQuantize: z \(z.shape) with codebook \(codebook.shape)")
        let (batch, channels, plane) = (z.shape[0], z.shape[1], z.shape[2] * z.shape[3])
        let positions = batch * plane, codeCount = codebook.shape[0]
        var flat = [Float](repeating: 0, count: positions * channels)  // (B, h·w, C)
        swapMiddleAxesForward(&flat, z.data, batch, channels, plane, 1)
        let codes = nearestCodes(flat, codebook.data, positions: positions, codes: codeCount, channels: channels)
        // difference (B, h·w, C) = e − z
        var difference = [Float](repeating: 0, count: positions * channels)
        for p in 0..<positions {
            let code = codebook.data + Int(codes[p]) * channels
            for c in 0..<channels { difference[p * channels + c] = code[c] - flat[p * channels + c] }
        }
        let quantized = output(z.shape, z)  // (B, C, h, w)
        var gathered = [Float](repeating: 0, count: positions * channels)  // (B, h·w, C) code vectors
        gathered.withUnsafeMutableBufferPointer { rows in
            for p in 0..<positions {
                (rows.baseAddress! + p * channels).update(from: codebook.data + Int(codes[p]) * channels, count: channels)
            }
        }
        swapMiddleAxesForward(quantized.data, gathered, batch, plane, channels, 1)
        record(quantized) { axpy(z.grad, 1, quantized.grad, z.count) }

        let meanScale = 1 / Float(max(1, positions * channels))
        let loss = output([1], z, codebook)
        loss.data[0] = (codebookWeight + commitmentWeight) * sumOfSquares(difference, difference.count) * meanScale
        record(loss) {
            let upstream = loss.grad[0] * 2 * meanScale
            if codebook.requiresGrad {  // d/de of w·mean((e − z)²)
                difference.withUnsafeBufferPointer { rows in
                    for p in 0..<positions {
                        axpy(codebook.grad + Int(codes[p]) * channels, upstream * codebookWeight,
                             rows.baseAddress! + p * channels, channels)
                    }
                }
            }
            if z.requiresGrad {  // d/dz of w·mean((z − e)²), back in (B, C, h, w)
                var planar = [Float](repeating: 0, count: z.count)
                swapMiddleAxesForward(&planar, difference, batch, plane, channels, 1)
                axpy(z.grad, -upstream * commitmentWeight, planar, z.count)
            }
        }
        return (quantized, codes, loss)
    }
}

/// For each of `positions` rows of x (positions, C), the index of the nearest row of
/// codebook (K, C) in Euclidean distance (the first on ties): argmin ‖e‖² − 2·x·e.
public func nearestCodes(_ x: UnsafePointer<Float>, _ codebook: UnsafePointer<Float>,
                         positions: Int, codes: Int, channels: Int) -> [Int32] {
    var norms = [Float](repeating: 0, count: codes)
    for k in 0..<codes { norms[k] = sumOfSquares(codebook + k * channels, channels) }
    var result = [Int32](repeating: 0, count: positions)
    let rowsPerChunk = 256
    let chunks = (positions + rowsPerChunk - 1) / rowsPerChunk
    norms.withUnsafeBufferPointer { norms in result.withUnsafeMutableBufferPointer { out in
        Threads.parallelFor(chunks) { range in
            var scores = [Float](repeating: 0, count: rowsPerChunk * codes)
            for chunk in range {
                let first = chunk * rowsPerChunk, rows = min(rowsPerChunk, positions - first)
                gemm(transposeB: true, m: rows, n: codes, k: channels, alpha: -2,
                     a: x + first * channels, b: codebook, c: &scores)  // (rows, K)
                for r in 0..<rows {
                    var best = 0, bestDistance = Float.infinity
                    for k in 0..<codes {
                        let distance = scores[r * codes + k] + norms[k]
                        if distance < bestDistance { bestDistance = distance; best = k }
                    }
                    out[first + r] = Int32(best)
                }
            }
        }
    } }
    return result
}

extension Tape {
    /// Finite scalar quantization (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
    /// Simple"): channel c of z (B, C, h, w) is squashed to u = clamp(σ(z)·L_c − ½, 0, L_c − 1),
    /// which gives each of its L_c levels an equal share of σ's range, and rounded to the level
    /// q = ⌊u + ½⌋. The output is q spread over [−1, 1]: 2q / (L_c − 1) − 1. The gradient goes
    /// straight through the rounding and the clamp to σ. Also returns the levels, (B·h·w, C)
    /// row-major over (b, y, x).
    public func finiteScalarQuantize(_ z: Tensor, levels: [Int]) -> (quantized: Tensor, levels: [Int32]) {
        precondition(z.shape.count == 4 && z.shape[1] == levels.count && levels.allSatisfy { $0 >= 2 },
                     "finiteScalarQuantize: z \(z.shape) with levels \(levels)")
        let (batch, channels, plane) = (z.shape[0], z.shape[1], z.shape[2] * z.shape[3])
        let out = output(z.shape, z)  // (B, C, h, w)
        let slopes = Tensor(shape: z.shape)  // (B, C, h, w) d out / d z
        var chosen = [Int32](repeating: 0, count: batch * plane * channels)  // (B·h·w, C)
        for b in 0..<batch {
            for c in 0..<channels {
                let count = Float(levels[c]), spread = 2 / (count - 1)
                let offset = (b * channels + c) * plane
                for p in 0..<plane {
                    let s = 1 / (1 + Foundation.exp(-z.data[offset + p]))
                    let u = min(max(s * count - 0.5, 0), count - 1)
                    let q = (u + 0.5).rounded(.down)
                    out.data[offset + p] = q * spread - 1
                    slopes.data[offset + p] = spread * count * s * (1 - s)
                    chosen[(b * plane + p) * channels + c] = Int32(q)
                }
            }
        }
        record(out) {
            guard z.requiresGrad else { return }
            for i in 0..<z.count { z.grad[i] += out.grad[i] * slopes.data[i] }
        }
        return (out, chosen)
    }
}
