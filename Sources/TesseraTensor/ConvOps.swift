// The tape's convolution ops, NCHW: convolution, transposed convolution and nearest
// upsampling. Column scratch lives only for the duration of a forward or backward call.
import TesseraKernels

extension Tape {
    /// x (B, Cin, H, W) ⊛ weight (Cout, Cin, K, K) + bias (Cout) → (B, Cout, gh, gw).
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.shape.count == 4 && weight.shape.count == 4 && weight.shape[1] == x.shape[1]
                     && weight.shape[2] == weight.shape[3], "conv2d: x \(x.shape) with weight \(weight.shape)")
        let (batch, outChannels) = (x.shape[0], weight.shape[0])
        precondition(bias == nil || bias!.shape == [outChannels], "conv2d: bias \(bias!.shape) for \(outChannels) channels")
        let g = ConvGeometry(channels: x.shape[1], height: x.shape[2], width: x.shape[3],
                             kernel: weight.shape[2], stride: stride, padding: padding)
        let out = unfilledOutput([batch, outChannels, g.gridHeight, g.gridWidth], x, weight, bias)  // (B, Cout, gh, gw)
        withColumns(g) { columns in
            conv2dForward(out.data, x.data, weight.data, bias?.data, columns,
                          batch: batch, outChannels: outChannels, geometry: g)
        }
        record(out) {
            let dx = x.gradIfRequired
            let dw = weight.gradIfRequired
            let db = bias?.gradIfRequired
            self.withColumns(g) { columns in
                conv2dBackward(dx, dw, db, out.grad, x.data, weight.data, columns,
                               batch: batch, outChannels: outChannels, geometry: g)
            }
        }
        return out
    }

    /// The transposed convolution: x (B, Cin, h, w), weight (Cin, Cout, K, K), bias (Cout)
    /// → (B, Cout, (h−1)·stride − 2·padding + K, likewise for the width).
    public func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.shape.count == 4 && weight.shape.count == 4 && weight.shape[0] == x.shape[1]
                     && weight.shape[2] == weight.shape[3], "convTranspose2d: x \(x.shape) with weight \(weight.shape)")
        let (batch, inChannels, outChannels, k) = (x.shape[0], x.shape[1], weight.shape[1], weight.shape[2])
        precondition(bias == nil || bias!.shape == [outChannels], "convTranspose2d: bias \(bias!.shape) for \(outChannels) channels")
        let height = (x.shape[2] - 1) * stride - 2 * padding + k
        let width = (x.shape[3] - 1) * stride - 2 * padding + k
        precondition(height > 0 && width > 0, "convTranspose2d: x \(x.shape) gives an empty output")
        let g = ConvGeometry(channels: outChannels, height: height, width: width, kernel: k, stride: stride, padding: padding)
        let out = unfilledOutput([batch, outChannels, height, width], x, weight, bias)  // (B, Cout, H, W)
        withColumns(g) { columns in
            convTranspose2dForward(out.data, x.data, weight.data, bias?.data, columns,
                                   batch: batch, inChannels: inChannels, geometry: g)
        }
        record(out) {
            let dx = x.gradIfRequired
            let dw = weight.gradIfRequired
            let db = bias?.gradIfRequired
            self.withColumns(g) { columns in
                convTranspose2dBackward(dx, dw, db, out.grad, x.data, weight.data, columns,
                                        batch: batch, inChannels: inChannels, geometry: g)
            }
        }
        return out
    }

    /// Nearest-neighbour upsampling: x (B, C, H, W) → (B, C, H·factor, W·factor).
    public func upsampleNearest(_ x: Tensor, factor: Int) -> Tensor {
        precondition(x.shape.count == 4 && factor >= 1, "upsampleNearest: x \(x.shape), factor \(factor)")
        let (planes, height, width) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let out = unfilledOutput([x.shape[0], x.shape[1], height * factor, width * factor], x)  // (B, C, H·f, W·f)
        upsampleNearestForward(out.data, x.data, planes: planes, height: height, width: width, factor: factor)
        record(out) {
            upsampleNearestBackward(x.grad, out.grad, planes: planes, height: height, width: width, factor: factor)
        }
        return out
    }

    private func withColumns(_ g: ConvGeometry, _ body: (UnsafeMutablePointer<Float>) -> Void) {
        let columns = UnsafeMutablePointer<Float>.allocate(capacity: max(1, g.scratchCount))
        defer { columns.deallocate() }
        body(columns)
    }
}
