// The tape's attention ops: scaled dot-product attention over heads (TesseraAttention's
// kernels) and the axis swap that splits a (B, T, C) activation into heads and back.
import TesseraAttention
import TesseraKernels

extension Tape {
    /// (A, B, C, D) → (A, C, B, D).
    public func swapMiddleAxes(_ x: Tensor) -> Tensor {
        precondition(x.shape.count == 4, "swapMiddleAxes: x \(x.shape) is not 4-D")
        let (a, b, c, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let out = unfilledOutput([a, c, b, d], x)  // (A, C, B, D)
        swapMiddleAxesForward(out.data, x.data, a, b, c, d)
        record(out) { swapMiddleAxesBackward(x.grad, out.grad, a, b, c, d) }
        return out
    }

    /// softmax(Q·Kᵀ/√HS + mask)·V per head: query (B, NH, Tq, HS), key and value
    /// (B, NH, Tk, HS) → (B, NH, Tq, HS). Queries sit at the last Tq of the Tk positions for
    /// causal and prefix masks (position Tk − Tq + i). `keyPadding` (B·Tk) hides keys.
    public func attention(
        query: Tensor, key: Tensor, value: Tensor, mask: AttentionMask, keyPadding: [Bool]? = nil,
        blocks: AttentionBlocks = AttentionBlocks()
    ) -> Tensor {
        precondition(query.shape.count == 4 && key.shape.count == 4 && key.shape == value.shape
                     && query.shape[0] == key.shape[0] && query.shape[1] == key.shape[1] && query.shape[3] == key.shape[3],
                     "attention: query \(query.shape), key \(key.shape), value \(value.shape)")
        let shape = AttentionShape(batch: query.shape[0], heads: query.shape[1], queryLength: query.shape[2],
                                   keyLength: key.shape[2], headSize: query.shape[3],
                                   queryOffset: mask == .full ? 0 : key.shape[2] - query.shape[2])
        precondition(keyPadding == nil || keyPadding!.count == shape.batch * shape.keyLength,
                     "attention: \(keyPadding!.count) padding flags for B=\(shape.batch) Tk=\(shape.keyLength)")
        let out = output(query.shape, query, key, value)                          // (B, NH, Tq, HS)
        let logSumExp = Tensor(shape: [shape.batch, shape.heads, shape.queryLength])  // (B, NH, Tq)
        withOptionalPointer(keyPadding) { padding in
            attentionForward(out.data, logSumExp.data, query.data, key.data, value.data,
                             keyPadding: padding, shape: shape, mask: mask, blocks: blocks)
        }
        record(out) {
            withOptionalPointer(keyPadding) { padding in
                attentionBackward(query.gradIfRequired, key.gradIfRequired, value.gradIfRequired, out.grad,
                                  query.data, key.data, value.data, out.data, logSumExp.data,
                                  keyPadding: padding, shape: shape, mask: mask, blocks: blocks)
            }
        }
        return out
    }
}

func withOptionalPointer<T, R>(_ array: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
