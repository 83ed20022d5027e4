// Tape ops a diffusion transformer needs around its blocks: cutting a tensor along one axis
// and joining tensors along one (text and latent positions in one sequence; one conditioning
// projection split into its parts), and adaLN's per-item modulation and gating (DiT,
// Peebles & Xie 2023).
import TesseraKernels

extension Tape {
    /// The part `range` of x along `axis` (other axes whole).
    public func slice(_ x: Tensor, axis: Int, _ range: Range<Int>) -> Tensor {
        precondition(x.shape.indices.contains(axis) && range.lowerBound >= 0 && range.upperBound <= x.shape[axis],
                     "slice: \(range) along axis \(axis) of \(x.shape)")
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        let (length, part) = (x.shape[axis], range.count)
        var shape = x.shape
        shape[axis] = part
        let out = output(shape, x)  // x's shape with `part` along `axis`
        for o in 0..<outer {
            (out.data + o * part * inner).update(from: x.data + (o * length + range.lowerBound) * inner, count: part * inner)
        }
        record(out) {
            for o in 0..<outer {
                axpy(x.grad + (o * length + range.lowerBound) * inner, 1, out.grad + o * part * inner, part * inner)
            }
        }
        return out
    }

    /// `parts` joined along `axis`; every other axis must agree.
    public func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty && parts.allSatisfy { part in
            part.shape.count == parts[0].shape.count && parts[0].shape.indices.contains(axis)
                && part.shape.indices.allSatisfy { $0 == axis || part.shape[$0] == parts[0].shape[$0] }
        }, "concatenate: shapes \(parts.map(\.shape)) along axis \(axis)")
        let outer = parts[0].shape[..<axis].reduce(1, *), inner = parts[0].shape[(axis + 1)...].reduce(1, *)
        let lengths = parts.map { $0.shape[axis] }, total = lengths.reduce(0, +)
        var shape = parts[0].shape
        shape[axis] = total
        let out = Tensor(shape: shape, requiresGrad: parts.contains { $0.requiresGrad })  // joined along `axis`
        var start = 0
        for (part, length) in zip(parts, lengths) {
            for o in 0..<outer {
                (out.data + (o * total + start) * inner).update(from: part.data + o * length * inner, count: length * inner)
            }
            start += length
        }
        record(out) {
            var start = 0
            for (part, length) in zip(parts, lengths) {
                if part.requiresGrad {
                    for o in 0..<outer {
                        axpy(part.grad + o * length * inner, 1, out.grad + (o * total + start) * inner, length * inner)
                    }
                }
                start += length
            }
        }
        return out
    }

    /// adaLN modulation: x (B, T, C) ⊙ (1 + scale) + shift, with shift and scale (B, C) per item.
    public func modulate(_ x: Tensor, shift: Tensor, scale: Tensor) -> Tensor {
        precondition(x.shape.count == 3 && shift.shape == [x.shape[0], x.shape[2]] && scale.shape == shift.shape,
                     "modulate: x \(x.shape) needs shift and scale (B, C), got \(shift.shape) and \(scale.shape)")
        let (batch, time, channels) = (x.shape[0], x.shape[1], x.shape[2])
        let out = output(x.shape, x, shift, scale)  // (B, T, C)
        modulateForward(out.data, x.data, shift.data, scale.data, batch: batch, time: time, channels: channels)
        record(out) {
            modulateBackward(x.gradIfRequired, shift.gradIfRequired, scale.gradIfRequired, out.grad, x.data, scale.data,
                             batch: batch, time: time, channels: channels)
        }
        return out
    }

    /// A residual branch x (B, T, C) scaled per item and channel by gate (B, C).
    public func gate(_ x: Tensor, by gate: Tensor) -> Tensor {
        precondition(x.shape.count == 3 && gate.shape == [x.shape[0], x.shape[2]],
                     "gate: x \(x.shape) needs a gate (B, C), got \(gate.shape)")
        let (batch, time, channels) = (x.shape[0], x.shape[1], x.shape[2])
        let out = output(x.shape, x, gate)  // (B, T, C)
        gateForward(out.data, x.data, gate.data, batch: batch, time: time, channels: channels)
        record(out) {
            gateBackward(x.gradIfRequired, gate.gradIfRequired, out.grad, x.data, gate.data,
                         batch: batch, time: time, channels: channels)
        }
        return out
    }
}
