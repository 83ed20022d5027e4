// 2-D convolution and transposed convolution as im2col + GEMM, NCHW layout, square kernels,
// and nearest-neighbour upsampling. The transposed convolution is the adjoint of the
// convolution with the same geometry, so both share im2col/col2im. The caller provides the
// column scratch (`ConvGeometry.columnsCount` floats); backward passes ADD into gradients,
// and skip any gradient passed as nil.

/// The geometry of one convolution, described from its image side: a convolution reads an
/// image (channels, height, width) and writes a grid; a transposed convolution reads the
/// grid and writes the image.
public struct ConvGeometry: Equatable, Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int

    public init(channels: Int, height: Int, width: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        precondition(kernel > 0 && stride > 0 && padding >= 0, "conv: kernel \(kernel) stride \(stride) padding \(padding)")
        precondition(height + 2 * padding >= kernel && width + 2 * padding >= kernel,
                     "conv: kernel \(kernel) larger than padded image \(height)×\(width)+\(padding)")
        self.channels = channels
        self.height = height
        self.width = width
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    public var gridHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var gridWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    /// Rows of the column matrix: channels · kernel².
    public var columnRows: Int { channels * kernel * kernel }
    /// Floats of column scratch a call needs: (channels·kernel², gridHeight·gridWidth).
    public var columnsCount: Int { columnRows * gridHeight * gridWidth }
    public var imageSize: Int { channels * height * width }
    /// A 1×1, stride-1, unpadded kernel needs no column matrix: the image is one already.
    var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }
}

/// columns (C·K·K, gh·gw) from one image (C, H, W); taps outside the image read 0.
public func im2col(_ columns: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ g: ConvGeometry) {
    let gh = g.gridHeight, gw = g.gridWidth, k = g.kernel
    Threads.parallelFor(g.columnRows, minimumChunk: max(1, 4096 / max(1, gh * gw))) { range in
        for row in range {
            let c = row / (k * k), ky = (row / k) % k, kx = row % k
            let plane = image + c * g.height * g.width
            let dst = columns + row * gh * gw
            for oy in 0..<gh {
                let y = oy * g.stride - g.padding + ky
                let line = dst + oy * gw
                guard y >= 0 && y < g.height else {
                    line.initialize(repeating: 0, count: gw)
                    continue
                }
                for ox in 0..<gw {
                    let x = ox * g.stride - g.padding + kx
                    line[ox] = x >= 0 && x < g.width ? plane[y * g.width + x] : 0
                }
            }
        }
    }
}

/// image (C, H, W) += the columns (C·K·K, gh·gw) scattered back: the adjoint of im2col.
public func col2im(_ image: UnsafeMutablePointer<Float>, _ columns: UnsafePointer<Float>, _ g: ConvGeometry) {
    let gh = g.gridHeight, gw = g.gridWidth, k = g.kernel
    Threads.parallelFor(g.channels) { range in  // a channel's rows write only that channel
        for c in range {
            let plane = image + c * g.height * g.width
            for ky in 0..<k {
                for kx in 0..<k {
                    let src = columns + ((c * k + ky) * k + kx) * gh * gw
                    for oy in 0..<gh {
                        let y = oy * g.stride - g.padding + ky
                        guard y >= 0 && y < g.height else { continue }
                        for ox in 0..<gw {
                            let x = ox * g.stride - g.padding + kx
                            if x >= 0 && x < g.width { plane[y * g.width + x] += src[oy * gw + ox] }
                        }
                    }
                }
            }
        }
    }
}

// MARK: Convolution: image (B, Cin, H, W) → grid (B, Cout, gh, gw)

public func conv2dForward(
    _ out: UnsafeMutablePointer<Float>,   // (B, Cout, gh, gw)
    _ inp: UnsafePointer<Float>,          // (B, Cin, H, W)
    _ weight: UnsafePointer<Float>,       // (Cout, Cin, K, K)
    _ bias: UnsafePointer<Float>?,        // (Cout)
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.columnsCount
    batch: Int, outChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    for b in 0..<batch {
        let image = inp + b * g.imageSize
        let cols: UnsafePointer<Float>
        if g.isPointwise { cols = image } else { im2col(columns, image, g); cols = UnsafePointer(columns) }
        gemm(m: outChannels, n: gridSize, k: g.columnRows, a: weight, b: cols, c: out + b * outChannels * gridSize)
    }
    if let bias { channelBiasForward(out, bias, batch: batch, channels: outChannels, spatial: gridSize) }
}

public func conv2dBackward(
    _ dinp: UnsafeMutablePointer<Float>?,     // (B, Cin, H, W)
    _ dweight: UnsafeMutablePointer<Float>?,  // (Cout, Cin, K, K)
    _ dbias: UnsafeMutablePointer<Float>?,   // (Cout)
    _ dout: UnsafePointer<Float>,            // (B, Cout, gh, gw)
    _ inp: UnsafePointer<Float>,             // (B, Cin, H, W)
    _ weight: UnsafePointer<Float>,          // (Cout, Cin, K, K)
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.columnsCount
    batch: Int, outChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    for b in 0..<batch {
        let image = inp + b * g.imageSize
        let dy = dout + b * outChannels * gridSize
        if let dweight {  // dW (Cout, CKK) += dy (Cout, gh·gw) · colsᵀ
            let cols: UnsafePointer<Float>
            if g.isPointwise { cols = image } else { im2col(columns, image, g); cols = UnsafePointer(columns) }
            gemm(transposeB: true, m: outChannels, n: g.columnRows, k: gridSize, a: dy, b: cols, beta: 1, c: dweight)
        }
        if let dinp {  // dcols (CKK, gh·gw) = Wᵀ · dy, scattered back onto the image
            let dimage = dinp + b * g.imageSize
            if g.isPointwise {
                gemm(transposeA: true, m: g.columnRows, n: gridSize, k: outChannels, a: weight, b: dy, beta: 1, c: dimage)
            } else {
                gemm(transposeA: true, m: g.columnRows, n: gridSize, k: outChannels, a: weight, b: dy, c: columns)
                col2im(dimage, columns, g)
            }
        }
    }
    if let dbias { channelBiasBackward(dbias, dout, batch: batch, channels: outChannels, spatial: gridSize) }
}

// MARK: Transposed convolution: grid (B, Cin, gh, gw) → image (B, Cout, H, W)
// `geometry` describes the output image (Cout, H, W); the input must be its grid.

public func convTranspose2dForward(
    _ out: UnsafeMutablePointer<Float>,   // (B, Cout, H, W)
    _ inp: UnsafePointer<Float>,          // (B, Cin, gh, gw)
    _ weight: UnsafePointer<Float>,       // (Cin, Cout, K, K)
    _ bias: UnsafePointer<Float>?,        // (Cout)
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.columnsCount
    batch: Int, inChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    out.initialize(repeating: 0, count: batch * g.imageSize)
    for b in 0..<batch {
        let x = inp + b * inChannels * gridSize, image = out + b * g.imageSize
        if g.isPointwise {
            gemm(transposeA: true, m: g.columnRows, n: gridSize, k: inChannels, a: weight, b: x, c: image)
            continue
        }
        // cols (Cout·K·K, gh·gw) = Wᵀ · x, then scattered onto the image
        gemm(transposeA: true, m: g.columnRows, n: gridSize, k: inChannels, a: weight, b: x, c: columns)
        col2im(image, columns, g)
    }
    if let bias { channelBiasForward(out, bias, batch: batch, channels: g.channels, spatial: g.height * g.width) }
}

public func convTranspose2dBackward(
    _ dinp: UnsafeMutablePointer<Float>?,     // (B, Cin, gh, gw)
    _ dweight: UnsafeMutablePointer<Float>?,  // (Cin, Cout, K, K)
    _ dbias: UnsafeMutablePointer<Float>?,   // (Cout)
    _ dout: UnsafePointer<Float>,            // (B, Cout, H, W)
    _ inp: UnsafePointer<Float>,             // (B, Cin, gh, gw)
    _ weight: UnsafePointer<Float>,          // (Cin, Cout, K, K)
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.columnsCount
    batch: Int, inChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    for b in 0..<batch {
        let x = inp + b * inChannels * gridSize
        let dimage = dout + b * g.imageSize
        let cols: UnsafePointer<Float>
        if g.isPointwise { cols = dimage } else { im2col(columns, dimage, g); cols = UnsafePointer(columns) }
        if let dinp {  // dx (Cin, gh·gw) += W (Cin, Cout·K·K) · cols
            gemm(m: inChannels, n: gridSize, k: g.columnRows, a: weight, b: cols, beta: 1, c: dinp + b * inChannels * gridSize)
        }
        if let dweight {  // dW (Cin, Cout·K·K) += x (Cin, gh·gw) · colsᵀ
            gemm(transposeB: true, m: inChannels, n: g.columnRows, k: gridSize, a: x, b: cols, beta: 1, c: dweight)
        }
    }
    if let dbias {
        channelBiasBackward(dbias, dout, batch: batch, channels: g.channels, spatial: g.height * g.width)
    }
}

// MARK: Nearest-neighbour upsampling by an integer factor, planes (N, H, W) → (N, H·f, W·f)

public func upsampleNearestForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
    planes: Int, height: Int, width: Int, factor: Int
) {
    let outWidth = width * factor
    Threads.parallelFor(planes * height, minimumChunk: max(1, elementwiseChunk / max(1, outWidth * factor))) { range in
        for line in range {  // one input row → `factor` output rows
            let src = inp + line * width
            let dst = out + line * factor * outWidth
            for x in 0..<outWidth { dst[x] = src[x / factor] }
            for copy in 1..<factor { (dst + copy * outWidth).update(from: dst, count: outWidth) }
        }
    }
}

public func upsampleNearestBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
    planes: Int, height: Int, width: Int, factor: Int
) {
    let outWidth = width * factor
    Threads.parallelFor(planes * height, minimumChunk: max(1, elementwiseChunk / max(1, outWidth * factor))) { range in
        for line in range {
            let dst = dinp + line * width
            for copy in 0..<factor {
                let src = dout + (line * factor + copy) * outWidth
                for x in 0..<outWidth { dst[x / factor] += src[x] }
            }
        }
    }
}
