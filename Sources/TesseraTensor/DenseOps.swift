// The tape's dense ops: matrix products, linear layers, element-wise arithmetic, reductions
// to a scalar, and reshape. Shapes follow STYLE.md's letters.
import Foundation
import TesseraKernels

extension Tape {
    /// op(A) · op(B) for 2-D operands, or batch by batch for 3-D operands of equal batch.
    /// A is (M, K), or (K, M) with `transposeA`; B is (K, N), or (N, K) with `transposeB`.
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.shape.count == b.shape.count && (a.shape.count == 2 || a.shape.count == 3),
                     "matmul: operands \(a.shape) and \(b.shape) must both be 2-D or both 3-D")
        let batched = a.shape.count == 3
        let batch = batched ? a.shape[0] : 1
        precondition(!batched || b.shape[0] == batch, "matmul: batch \(a.shape) vs \(b.shape)")
        let (ar, ac) = (a.shape[a.shape.count - 2], a.shape[a.shape.count - 1])
        let (br, bc) = (b.shape[b.shape.count - 2], b.shape[b.shape.count - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul: inner sizes differ, \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let out = unfilledOutput(batched ? [batch, m, n] : [m, n], a, b)  // (B, M, N) or (M, N)
        batchedGemm(count: batch, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                    a: a.data, strideA: m * k, b: b.data, strideB: k * n, c: out.data, strideC: m * n)
        record(out) {
            // C = op(A)·op(B): dop(A) = dC·op(B)ᵀ, dop(B) = op(A)ᵀ·dC, then undo each op.
            if a.requiresGrad {
                let da = a.gradientTarget
                if transposeA {  // dA (K, M) = op(B) · dCᵀ
                    batchedGemm(count: batch, transposeA: transposeB, transposeB: true, m: k, n: m, k: n,
                                a: b.data, strideA: k * n, b: out.grad, strideB: m * n,
                                beta: da.beta, c: da.pointer, strideC: m * k)
                } else {  // dA (M, K) = dC · op(B)ᵀ
                    batchedGemm(count: batch, transposeA: false, transposeB: !transposeB, m: m, n: k, k: n,
                                a: out.grad, strideA: m * n, b: b.data, strideB: k * n,
                                beta: da.beta, c: da.pointer, strideC: m * k)
                }
            }
            if b.requiresGrad {
                let db = b.gradientTarget
                if transposeB {  // dB (N, K) = dCᵀ · op(A)
                    batchedGemm(count: batch, transposeA: true, transposeB: transposeA, m: n, n: k, k: m,
                                a: out.grad, strideA: m * n, b: a.data, strideB: m * k,
                                beta: db.beta, c: db.pointer, strideC: k * n)
                } else {  // dB (K, N) = op(A)ᵀ · dC
                    batchedGemm(count: batch, transposeA: !transposeA, transposeB: false, m: k, n: n, k: m,
                                a: a.data, strideA: m * k, b: out.grad, strideB: m * n,
                                beta: db.beta, c: db.pointer, strideC: k * n)
                }
            }
        }
        return out
    }

    /// x · Wᵀ + b over the last dimension: x (…, Cin), weight (Cout, Cin), bias (Cout).
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        let inChannels = x.lastDimension, outChannels = weight.shape[0]
        precondition(weight.shape == [outChannels, inChannels], "linear: x \(x.shape) with weight \(weight.shape)")
        precondition(bias == nil || bias!.shape == [outChannels], "linear: bias \(bias!.shape) for \(outChannels) outputs")
        let rows = x.rows
        let out = unfilledOutput(Array(x.shape.dropLast()) + [outChannels], x, weight, bias)  // (…, Cout)
        gemm(transposeB: true, m: rows, n: outChannels, k: inChannels, a: x.data, b: weight.data, c: out.data)
        if let bias { biasForward(out.data, bias.data, rows: rows, channels: outChannels) }
        record(out) {
            if x.requiresGrad {  // dx (rows, Cin) += dout · W
                let dx = x.gradientTarget
                gemm(m: rows, n: inChannels, k: outChannels, a: out.grad, b: weight.data, beta: dx.beta, c: dx.pointer)
            }
            if weight.requiresGrad {  // dW (Cout, Cin) += doutᵀ · x
                gemm(transposeA: true, m: outChannels, n: inChannels, k: rows, a: out.grad, b: x.data, beta: 1, c: weight.grad)
            }
            if let bias, bias.requiresGrad {
                biasBackward(bias.grad, out.grad, rows: rows, channels: outChannels)
            }
        }
        return out
    }

    /// a + b, same shape.
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { combine(a, 1, b) }

    /// a − b, same shape.
    public func sub(_ a: Tensor, _ b: Tensor) -> Tensor { combine(a, -1, b) }

    /// a + alpha·b.
    private func combine(_ a: Tensor, _ alpha: Float, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "add/sub: shapes \(a.shape) and \(b.shape) differ")
        let out = unfilledOutput(a.shape, a, b)
        addScaled(out.data, a.data, alpha, b.data, a.count)
        record(out) {
            if a.requiresGrad { axpy(a.grad, 1, out.grad, a.count) }
            if b.requiresGrad { axpy(b.grad, alpha, out.grad, b.count) }
        }
        return out
    }

    /// a ⊙ b, same shape.
    public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "mul: shapes \(a.shape) and \(b.shape) differ")
        let out = unfilledOutput(a.shape, a, b)
        multiply(out.data, a.data, b.data, a.count)
        record(out) {
            if a.requiresGrad { multiplyAccumulate(a.grad, out.grad, b.data, a.count) }
            if b.requiresGrad { multiplyAccumulate(b.grad, out.grad, a.data, b.count) }
        }
        return out
    }

    /// alpha · x.
    public func scale(_ x: Tensor, by alpha: Float) -> Tensor {
        let out = unfilledOutput(x.shape, x)
        TesseraKernels.scale(out.data, alpha, x.data, x.count)
        record(out) { axpy(x.grad, alpha, out.grad, x.count) }
        return out
    }

    /// s · x for a one-element tensor s that may be learned (CLIP's logit scale): ds = Σ x ⊙ dy.
    public func scale(_ x: Tensor, byScalar s: Tensor) -> Tensor {
        precondition(s.count == 1, "scale(byScalar:): s of shape \(s.shape) is not one element")
        let out = unfilledOutput(x.shape, x, s)
        TesseraKernels.scale(out.data, s.data[0], x.data, x.count)
        record(out) {
            if x.requiresGrad { axpy(x.grad, s.data[0], out.grad, x.count) }
            if s.requiresGrad { s.grad[0] += dot(x.data, out.grad, x.count) }
        }
        return out
    }

    /// exp(min(x, maximum)) element-wise; no gradient flows where x is capped.
    public func exp(_ x: Tensor, maximum: Float = .infinity) -> Tensor {
        let out = unfilledOutput(x.shape, x)
        for i in 0..<x.count { out.data[i] = Foundation.exp(min(x.data[i], maximum)) }
        record(out) {
            for i in 0..<x.count where x.data[i] < maximum { x.grad[i] += out.grad[i] * out.data[i] }
        }
        return out
    }

    /// Σ x, a one-element tensor of shape [1].
    public func sum(_ x: Tensor) -> Tensor { reduce(x, scale: 1) }

    /// The mean of x, a one-element tensor of shape [1].
    public func mean(_ x: Tensor) -> Tensor { reduce(x, scale: 1 / Float(max(1, x.count))) }

    private func reduce(_ x: Tensor, scale: Float) -> Tensor {
        let out = output([1], x)
        out.data[0] = TesseraKernels.sum(x.data, x.count) * scale
        record(out) { addScalar(x.grad, out.grad[0] * scale, x.count) }
        return out
    }

    /// The same values under a new shape of equal element count.
    public func reshape(_ x: Tensor, _ shape: [Int]) -> Tensor {
        let out = Tensor(shape: shape, sharingValuesOf: x, requiresGrad: x.requiresGrad)
        record(out) { axpy(x.grad, 1, out.grad, x.count) }
        return out
    }
}
