// The tape ops a discrete autoencoder needs around its quantizer: l2 normalisation of each
// position's channel vector (ViT-VQGAN's cosine-similarity codebook lookup, Yu et al. 2021),
// moving channels last and back, the KL of a categorical to the uniform prior (DALL-E's dVAE,
// Ramesh et al. 2021), the hinge losses of a patch discriminator, and detaching.
import Foundation
import TesseraKernels

extension Tape {
    /// x (B, C, H, W) with each position's C-vector scaled to unit length (zero stays zero).
    public func l2NormalizeChannels(_ x: Tensor, epsilon: Float = 1e-6) -> Tensor {
        precondition(x.shape.count == 4, "l2NormalizeChannels: x \(x.shape) is not (B, C, H, W)")
        let (batch, channels, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let out = output(x.shape, x)  // (B, C, H, W)
        let inverseNorms = Tensor(shape: [batch, plane])  // (B, H·W) 1 / max(‖x‖, ε)
        for b in 0..<batch {
            let image = x.data + b * channels * plane, result = out.data + b * channels * plane
            for p in 0..<plane {
                var sum: Float = 0
                for c in 0..<channels { sum += image[c * plane + p] * image[c * plane + p] }
                let inverse = 1 / max(sum.squareRoot(), epsilon)
                inverseNorms.data[b * plane + p] = inverse
                for c in 0..<channels { result[c * plane + p] = image[c * plane + p] * inverse }
            }
        }
        record(out) {
            // y = x/‖x‖: dx = (dy − y·(y·dy)) / ‖x‖
            for b in 0..<batch {
                let y = out.data + b * channels * plane, dy = out.grad + b * channels * plane
                let dx = x.grad + b * channels * plane
                for p in 0..<plane {
                    var dot: Float = 0
                    for c in 0..<channels { dot += y[c * plane + p] * dy[c * plane + p] }
                    let inverse = inverseNorms.data[b * plane + p]
                    for c in 0..<channels { dx[c * plane + p] += (dy[c * plane + p] - y[c * plane + p] * dot) * inverse }
                }
            }
        }
        return out
    }

    /// σ(x) = 1 / (1 + e^−x), elementwise.
    public func sigmoid(_ x: Tensor) -> Tensor {
        let out = output(x.shape, x)
        for i in 0..<x.count { out.data[i] = 1 / (1 + Foundation.exp(-x.data[i])) }
        record(out) {
            guard x.requiresGrad else { return }
            for i in 0..<x.count { x.grad[i] += out.grad[i] * out.data[i] * (1 - out.data[i]) }
        }
        return out
    }

    /// x (B, C, H, W) → (B, H, W, C): one row of C values per position.
    public func channelsLast(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "channelsLast: x \(x.shape) is not (B, C, H, W)")
        let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let out = output([batch, height, width, channels], x)  // (B, H, W, C)
        swapMiddleAxesForward(out.data, x.data, batch, channels, height * width, 1)
        record(out) { swapMiddleAxesBackward(x.grad, out.grad, batch, channels, height * width, 1) }
        return out
    }

    /// x (B, H, W, C) → (B, C, H, W).
    public func channelsFirst(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "channelsFirst: x \(x.shape) is not (B, H, W, C)")
        let (batch, height, width, channels) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let out = output([batch, channels, height, width], x)  // (B, C, H, W)
        swapMiddleAxesForward(out.data, x.data, batch, height * width, channels, 1)
        record(out) { swapMiddleAxesBackward(x.grad, out.grad, batch, height * width, channels, 1) }
        return out
    }

    /// The mean over rows of KL(softmax(logits) ‖ uniform) = Σ q log q + log V, for logits (…, V).
    public func klToUniform(_ logits: Tensor) -> Tensor {
        let (rows, classes) = (logits.rows, logits.lastDimension)
        let probabilities = Tensor(shape: logits.shape)  // (…, V)
        softmaxForward(probabilities.data, logits.data, rows: rows, columns: classes)
        var negativeEntropies = [Float](repeating: 0, count: rows)  // Σ q log q per row
        for r in 0..<rows {
            let q = probabilities.data + r * classes
            var sum: Float = 0
            for v in 0..<classes where q[v] > 0 { sum += q[v] * log(q[v]) }
            negativeEntropies[r] = sum
        }
        let out = output([1], logits)
        out.data[0] = negativeEntropies.reduce(0, +) / Float(max(1, rows)) + log(Float(classes))
        record(out) {
            // d(Σ q log q)/dl_j = q_j (log q_j − Σ q log q)
            let upstream = out.grad[0] / Float(max(1, rows))
            for r in 0..<rows {
                let q = probabilities.data + r * classes, dl = logits.grad + r * classes
                for v in 0..<classes where q[v] > 0 {
                    dl[v] += upstream * q[v] * (log(q[v]) - negativeEntropies[r])
                }
            }
        }
        return out
    }

    /// The discriminator's hinge loss on a batch of its logits: mean(max(0, 1 − s·x)) with
    /// s = +1 for real pictures and −1 for reconstructions (Lim & Ye 2017).
    public func hingeLoss(_ logits: Tensor, real: Bool) -> Tensor {
        let sign: Float = real ? 1 : -1
        let out = output([1], logits)
        var total: Float = 0
        for i in 0..<logits.count { total += max(0, 1 - sign * logits.data[i]) }
        out.data[0] = total / Float(max(1, logits.count))
        record(out) {
            let upstream = out.grad[0] / Float(max(1, logits.count))
            for i in 0..<logits.count where 1 - sign * logits.data[i] > 0 { logits.grad[i] -= sign * upstream }
        }
        return out
    }
}

extension Tensor {
    /// A copy of the values that no gradient flows back through.
    public func detached() -> Tensor {
        let copy = Tensor(shape: shape)
        copy.data.update(from: data, count: count)
        return copy
    }
}
