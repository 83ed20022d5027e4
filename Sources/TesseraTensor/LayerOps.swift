// The tape's activation, normalisation, softmax, loss and lookup ops. Each forward saves what
// its backward needs (the normalisers' mean and 1/σ, cross-entropy's log-sum-exp).
import TesseraKernels

extension Tape {
    public func gelu(_ x: Tensor) -> Tensor {
        let out = unfilledOutput(x.shape, x)
        geluForward(out.data, x.data, x.count)
        record(out) { geluBackward(x.grad, x.data, out.grad, x.count) }
        return out
    }

    public func silu(_ x: Tensor) -> Tensor {
        let out = unfilledOutput(x.shape, x)
        siluForward(out.data, x.data, x.count)
        record(out) { siluBackward(x.grad, x.data, out.grad, x.count) }
        return out
    }

    public func relu(_ x: Tensor) -> Tensor {
        let out = unfilledOutput(x.shape, x)
        reluForward(out.data, x.data, x.count)
        record(out) { reluBackward(x.grad, x.data, out.grad, x.count) }
        return out
    }

    /// Softmax over the last dimension.
    public func softmax(_ x: Tensor) -> Tensor {
        let out = unfilledOutput(x.shape, x)
        softmaxForward(out.data, x.data, rows: x.rows, columns: x.lastDimension)
        record(out) { softmaxBackward(x.grad, out.data, out.grad, rows: x.rows, columns: x.lastDimension) }
        return out
    }

    /// Layer norm over the last dimension: x (…, C), weight and bias (C).
    public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, epsilon: Float = 1e-5) -> Tensor {
        let channels = x.lastDimension, rows = x.rows
        precondition(weight.shape == [channels] && bias.shape == [channels],
                     "layerNorm: x \(x.shape) with weight \(weight.shape), bias \(bias.shape)")
        let out = unfilledOutput(x.shape, x, weight, bias)
        let mean = Tensor(shape: [rows]), rstd = Tensor(shape: [rows])  // (rows)
        layerNormForward(out.data, mean.data, rstd.data, x.data, weight.data, bias.data,
                         rows: rows, channels: channels, epsilon: epsilon)
        record(out) {
            let dx = x.gradIfRequired
            let dw = weight.gradIfRequired
            let db = bias.gradIfRequired
            layerNormBackward(dx, dw, db, out.grad, x.data, weight.data, mean.data, rstd.data,
                              rows: rows, channels: channels)
        }
        return out
    }

    /// Group norm: x (B, C, H, W) normalised over each group of C/G channels; weight, bias (C).
    public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, epsilon: Float = 1e-5) -> Tensor {
        precondition(x.shape.count == 4, "groupNorm: x \(x.shape) is not (B, C, H, W)")
        let (batch, channels, spatial) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        precondition(weight.shape == [channels] && bias.shape == [channels] && channels % groups == 0,
                     "groupNorm: x \(x.shape), \(groups) groups, weight \(weight.shape), bias \(bias.shape)")
        let out = unfilledOutput(x.shape, x, weight, bias)
        let mean = Tensor(shape: [batch, groups]), rstd = Tensor(shape: [batch, groups])  // (B, G)
        groupNormForward(out.data, mean.data, rstd.data, x.data, weight.data, bias.data,
                         batch: batch, channels: channels, spatial: spatial, groups: groups, epsilon: epsilon)
        record(out) {
            let dx = x.gradIfRequired
            let dw = weight.gradIfRequired
            let db = bias.gradIfRequired
            groupNormBackward(dx, dw, db, out.grad, x.data, weight.data, mean.data, rstd.data,
                              batch: batch, channels: channels, spatial: spatial, groups: groups)
        }
        return out
    }

    /// Cross-entropy of logits (…, V) against one target per row, as a one-element tensor.
    /// Rows whose target is `ignoreIndex` count zero. Without `weights` the result is the mean
    /// over the counted rows; with them it is Σ weight·loss (the caller chooses the scale).
    public func crossEntropy(
        _ logits: Tensor, targets: [Int32], weights: [Float]? = nil, ignoreIndex: Int32 = -1
    ) -> Tensor {
        let rows = logits.rows, classes = logits.lastDimension
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for logits \(logits.shape)")
        precondition(weights == nil || weights!.count == rows, "crossEntropy: \(weights!.count) weights for \(rows) rows")
        let rowWeights: [Float] = weights ?? {
            let counted = targets.filter { $0 != ignoreIndex }.count
            return [Float](repeating: 1 / Float(max(1, counted)), count: rows)
        }()
        let out = output([1], logits)
        let logSumExps = Tensor(shape: [rows])  // (rows)
        let total = targets.withUnsafeBufferPointer { t in
            rowWeights.withUnsafeBufferPointer { w in
                crossEntropyForward(logSumExps.data, logits.data, t.baseAddress!, w.baseAddress!,
                                    rows: rows, classes: classes, ignoreIndex: ignoreIndex)
            }
        }
        out.data[0] = Float(total)
        record(out) {
            targets.withUnsafeBufferPointer { t in
                rowWeights.withUnsafeBufferPointer { w in
                    crossEntropyBackward(logits.grad, logits.data, logSumExps.data, t.baseAddress!, w.baseAddress!,
                                         dloss: out.grad[0], rows: rows, classes: classes, ignoreIndex: ignoreIndex)
                }
            }
        }
        return out
    }

    /// Rows of `table` (V, C) picked by `ids`, shaped `idShape + [C]`.
    public func embedding(_ table: Tensor, ids: [Int32], idShape: [Int]? = nil) -> Tensor {
        precondition(table.shape.count == 2, "embedding: table \(table.shape) is not (V, C)")
        let (vocabulary, channels) = (table.shape[0], table.shape[1])
        let idShape = idShape ?? [ids.count]
        precondition(idShape.reduce(1, *) == ids.count, "embedding: \(ids.count) ids for shape \(idShape)")
        let out = output(idShape + [channels], table)  // (…, C)
        ids.withUnsafeBufferPointer { i in
            embeddingForward(out.data, table.data, i.baseAddress!, count: ids.count, vocabulary: vocabulary, channels: channels)
        }
        record(out) {
            ids.withUnsafeBufferPointer { i in
                embeddingBackward(table.grad, out.grad, i.baseAddress!, count: ids.count, channels: channels)
            }
        }
        return out
    }
}
