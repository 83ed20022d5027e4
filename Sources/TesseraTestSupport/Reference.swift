// Naive reference implementations in Double: the plain loops every fast kernel is tested
// against, and the functions whose central finite differences check every backward pass.
// Clarity over speed; each follows the definition the kernel's comment states.
import Foundation

public enum Reference {
    /// op(A) (m, k) · op(B) (k, n); A stored (m, k) or, transposed, (k, m); likewise B.
    public static func matmul(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int,
                              transposeA: Bool = false, transposeB: Bool = false) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var total = 0.0
                for p in 0..<k {
                    total += (transposeA ? a[p * m + i] : a[i * k + p]) * (transposeB ? b[j * k + p] : b[p * n + j])
                }
                c[i * n + j] = total
            }
        }
        return c
    }

    /// x (rows, Cin) · Wᵀ (Cin, Cout) + b.
    public static func linear(_ x: [Double], _ w: [Double], _ b: [Double]?, rows: Int, inChannels: Int, outChannels: Int) -> [Double] {
        var y = matmul(x, w, m: rows, n: outChannels, k: inChannels, transposeB: true)
        if let b { for r in 0..<rows { for c in 0..<outChannels { y[r * outChannels + c] += b[c] } } }
        return y
    }

    public static func gelu(_ x: [Double]) -> [Double] {
        x.map { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
    }

    public static func silu(_ x: [Double]) -> [Double] { x.map { $0 / (1 + exp(-$0)) } }

    public static func relu(_ x: [Double]) -> [Double] { x.map { max($0, 0) } }

    public static func softmax(_ x: [Double], rows: Int, columns: Int) -> [Double] {
        var y = x
        for r in 0..<rows {
            let row = x[r * columns..<(r + 1) * columns]
            let m = row.max() ?? 0
            let total = row.reduce(0) { $0 + exp($1 - m) }
            for c in 0..<columns { y[r * columns + c] = exp(x[r * columns + c] - m) / total }
        }
        return y
    }

    public static func layerNorm(_ x: [Double], _ w: [Double], _ b: [Double], rows: Int, channels: Int,
                                 epsilon: Double = 1e-5) -> [Double] {
        var y = x
        for r in 0..<rows {
            let row = Array(x[r * channels..<(r + 1) * channels])
            let mean = row.reduce(0, +) / Double(channels)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(channels)
            for c in 0..<channels { y[r * channels + c] = (row[c] - mean) / (variance + epsilon).squareRoot() * w[c] + b[c] }
        }
        return y
    }

    /// x (B, C, S) normalised over each group of C/G channels, then scaled per channel.
    public static func groupNorm(_ x: [Double], _ w: [Double], _ b: [Double], batch: Int, channels: Int,
                                 spatial: Int, groups: Int, epsilon: Double = 1e-5) -> [Double] {
        var y = x
        let perGroup = channels / groups, size = perGroup * spatial
        for block in 0..<batch * groups {
            let values = Array(x[block * size..<(block + 1) * size])
            let mean = values.reduce(0, +) / Double(size)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(size)
            for i in 0..<size {
                let c = (block % groups) * perGroup + i / spatial
                y[block * size + i] = (values[i] - mean) / (variance + epsilon).squareRoot() * w[c] + b[c]
            }
        }
        return y
    }

    /// Σ weight·(lse − logit[target]) over rows whose target is not `ignoreIndex`.
    public static func crossEntropy(_ logits: [Double], targets: [Int32], weights: [Double], classes: Int,
                                    ignoreIndex: Int32 = -1) -> Double {
        var total = 0.0
        for (r, t) in targets.enumerated() where t != ignoreIndex {
            let row = logits[r * classes..<(r + 1) * classes]
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            total += weights[r] * (lse - logits[r * classes + Int(t)])
        }
        return total
    }

    public static func embedding(_ table: [Double], ids: [Int32], channels: Int) -> [Double] {
        ids.flatMap { table[Int($0) * channels..<(Int($0) + 1) * channels] }
    }

    /// x (B, Cin, H, W) ⊛ w (Cout, Cin, K, K) + bias → (B, Cout, gh, gw), zero padding.
    public static func conv2d(_ x: [Double], _ w: [Double], _ bias: [Double]?, batch: Int, inChannels: Int,
                              height: Int, width: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int) -> [Double] {
        let gh = (height + 2 * padding - kernel) / stride + 1, gw = (width + 2 * padding - kernel) / stride + 1
        var y = [Double](repeating: 0, count: batch * outChannels * gh * gw)
        for b in 0..<batch { for o in 0..<outChannels { for oy in 0..<gh { for ox in 0..<gw {
            var total = bias?[o] ?? 0
            for c in 0..<inChannels { for ky in 0..<kernel { for kx in 0..<kernel {
                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                guard iy >= 0, iy < height, ix >= 0, ix < width else { continue }
                total += x[((b * inChannels + c) * height + iy) * width + ix] * w[((o * inChannels + c) * kernel + ky) * kernel + kx]
            } } }
            y[((b * outChannels + o) * gh + oy) * gw + ox] = total
        } } } }
        return y
    }

    /// x (B, Cin, h, w) with w (Cin, Cout, K, K): every input pixel stamps its kernel onto the
    /// output at (iy·stride − padding + ky, ix·stride − padding + kx); plus bias.
    public static func convTranspose2d(_ x: [Double], _ w: [Double], _ bias: [Double]?, batch: Int, inChannels: Int,
                                       height: Int, width: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int) -> [Double] {
        let oh = (height - 1) * stride - 2 * padding + kernel, ow = (width - 1) * stride - 2 * padding + kernel
        var y = [Double](repeating: 0, count: batch * outChannels * oh * ow)
        for b in 0..<batch { for o in 0..<outChannels {
            for i in 0..<oh * ow { y[(b * outChannels + o) * oh * ow + i] = bias?[o] ?? 0 }
            for c in 0..<inChannels { for iy in 0..<height { for ix in 0..<width {
                let v = x[((b * inChannels + c) * height + iy) * width + ix]
                for ky in 0..<kernel { for kx in 0..<kernel {
                    let oy = iy * stride - padding + ky, ox = ix * stride - padding + kx
                    guard oy >= 0, oy < oh, ox >= 0, ox < ow else { continue }
                    y[((b * outChannels + o) * oh + oy) * ow + ox] += v * w[((c * outChannels + o) * kernel + ky) * kernel + kx]
                } }
            } } }
        } }
        return y
    }

    public static func upsampleNearest(_ x: [Double], planes: Int, height: Int, width: Int, factor: Int) -> [Double] {
        var y: [Double] = []
        for p in 0..<planes { for oy in 0..<height * factor { for ox in 0..<width * factor {
            y.append(x[(p * height + oy / factor) * width + ox / factor])
        } } }
        return y
    }
}

extension Reference {
    /// softmax(Q·Kᵀ/√HS, over the keys `visible(b, i, j)` allows)·V for packed (B, NH, T, HS)
    /// tensors; a row that sees no key is 0.
    public static func attention(
        _ q: [Double], _ k: [Double], _ v: [Double], batch: Int, heads: Int, queryLength: Int, keyLength: Int,
        headSize: Int, visible: (_ b: Int, _ i: Int, _ j: Int) -> Bool
    ) -> [Double] {
        var out = [Double](repeating: 0, count: batch * heads * queryLength * headSize)
        let scale = 1 / Double(headSize).squareRoot()
        for b in 0..<batch { for h in 0..<heads {
            let head = b * heads + h
            for i in 0..<queryLength {
                var scores: [(Int, Double)] = []
                for j in 0..<keyLength where visible(b, i, j) {
                    var s = 0.0
                    for d in 0..<headSize { s += q[(head * queryLength + i) * headSize + d] * k[(head * keyLength + j) * headSize + d] }
                    scores.append((j, s * scale))
                }
                guard let m = scores.map(\.1).max() else { continue }
                let total = scores.reduce(0) { $0 + exp($1.1 - m) }
                for (j, s) in scores {
                    let p = exp(s - m) / total
                    for d in 0..<headSize { out[(head * queryLength + i) * headSize + d] += p * v[(head * keyLength + j) * headSize + d] }
                }
            }
        } }
        return out
    }
}
