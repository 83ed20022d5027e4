// 2-D convolution and transposed convolution as im2col + GEMM, NCHW layout, square kernels,
// and nearest-neighbour upsampling. The transposed convolution is the adjoint of the
// convolution with the same geometry, so both share im2col/col2im. Images are spread over the
// threads, each multiplying with single-threaded BLAS in its own part of the column scratch the
// caller provides (`ConvGeometry.scratchCount` floats): one large parallel region instead of
// many small ones, which at these sizes cost more in thread hand-offs than they gain. Backward
// passes ADD into gradients, and skip any gradient passed as nil.

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
    /// Floats of one image's column matrix: (channels·kernel², gridHeight·gridWidth).
    public var columnsCount: Int { columnRows * gridHeight * gridWidth }
    /// Floats of column scratch a convolution call needs: a column matrix per thread.
    public var scratchCount: Int { columnsCount * Threads.count }
    public var imageSize: Int { channels * height * width }
    /// A 1×1, stride-1, unpadded kernel needs no column matrix: the image is one already.
    var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }
}

/// The grid columns [first, end) whose tap at kernel offset `k` lands inside a line of
/// `length` pixels: x = ox·stride − padding + k ∈ [0, length).
@inline(__always)
private func validColumns(_ k: Int, length: Int, grid: Int, _ g: ConvGeometry) -> Range<Int> {
    let lowest = g.padding - k                      // ox·stride ≥ padding − k
    let first = lowest <= 0 ? 0 : (lowest + g.stride - 1) / g.stride
    let highest = length - 1 + g.padding - k        // ox·stride ≤ length − 1 + padding − k
    let end = highest < 0 ? 0 : min(grid, highest / g.stride + 1)
    return first..<max(first, end)
}

/// columns (C·K·K, gh·gw) from one image (C, H, W); taps outside the image read 0.
/// Single-threaded: the convolutions call it from their own per-image tasks.
public func im2col(_ columns: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ g: ConvGeometry) {
    let gh = g.gridHeight, gw = g.gridWidth, k = g.kernel, s = g.stride
    for row in 0..<g.columnRows {
        let c = row / (k * k), ky = (row / k) % k, kx = row % k
        let plane = image + c * g.height * g.width
        let dst = columns + row * gh * gw
        let inside = validColumns(kx, length: g.width, grid: gw, g)
        for oy in 0..<gh {
            let y = oy * s - g.padding + ky
            let line = dst + oy * gw
            guard y >= 0 && y < g.height, !inside.isEmpty else {
                line.initialize(repeating: 0, count: gw)
                continue
            }
            line.initialize(repeating: 0, count: inside.lowerBound)
            let source = plane + y * g.width - g.padding + kx
            if s == 1 {
                (line + inside.lowerBound).initialize(from: source + inside.lowerBound, count: inside.count)
            } else if s == 2 {  // every other pixel: the even lanes of 16, while they stay in the plane
                let planeEnd = g.height * g.width - (y * g.width - g.padding + kx)
                var ox = inside.lowerBound
                while ox + 8 <= inside.upperBound && 2 * ox + 16 <= planeEnd {
                    store8(load16(source + 2 * ox).evenHalf, line + ox)
                    ox += 8
                }
                while ox < inside.upperBound { line[ox] = source[2 * ox]; ox += 1 }
            } else {
                for ox in inside { line[ox] = source[ox * s] }
            }
            (line + inside.upperBound).initialize(repeating: 0, count: gw - inside.upperBound)
        }
    }
}

/// image (C, H, W) += the columns (C·K·K, gh·gw) scattered back: the adjoint of im2col.
public func col2im(_ image: UnsafeMutablePointer<Float>, _ columns: UnsafePointer<Float>, _ g: ConvGeometry) {
    let gh = g.gridHeight, gw = g.gridWidth, k = g.kernel, s = g.stride
    for row in 0..<g.columnRows {
        let c = row / (k * k), ky = (row / k) % k, kx = row % k
        let plane = image + c * g.height * g.width
        let src = columns + row * gh * gw
        let inside = validColumns(kx, length: g.width, grid: gw, g)
        for oy in 0..<gh {
            let y = oy * s - g.padding + ky
            guard y >= 0 && y < g.height else { continue }
            let target = plane + y * g.width - g.padding + kx, line = src + oy * gw
            if s == 1 {
                accumulate(target + inside.lowerBound, line + inside.lowerBound, inside.count)
            } else if s == 2 {  // every other pixel: add into the even lanes of 16, odd lanes kept
                let planeEnd = g.height * g.width - (y * g.width - g.padding + kx)
                var ox = inside.lowerBound
                while ox + 8 <= inside.upperBound && 2 * ox + 16 <= planeEnd {
                    let pixels = load16(target + 2 * ox)
                    store16(interleave(pixels.evenHalf + load8(line + ox), pixels.oddHalf), target + 2 * ox)
                    ox += 8
                }
                while ox < inside.upperBound { target[2 * ox] += line[ox]; ox += 1 }
            } else {
                for ox in inside { target[ox * s] += line[ox] }
            }
        }
    }
}

/// (e₀, o₀, e₁, o₁, …, e₇, o₇).
@inline(__always)
private func interleave(_ e: Vec8, _ o: Vec8) -> Vec16 {
    Vec16(e[0], o[0], e[1], o[1], e[2], o[2], e[3], o[3], e[4], o[4], e[5], o[5], e[6], o[6], e[7], o[7])
}

// MARK: Convolution: image (B, Cin, H, W) → grid (B, Cout, gh, gw)

/// How many tasks a convolution over `batch` images runs: one per thread, at most one per image.
private func imageTaskCount(_ batch: Int) -> Int { max(1, min(Threads.count, batch)) }

/// Splits `batch` images over `imageTaskCount(batch)` tasks: body(images, scratch, task) with
/// the task's own column matrix. OpenBLAS runs single-threaded inside when there is more than one.
private func forEachImageRange(
    _ batch: Int, _ g: ConvGeometry, _ columns: UnsafeMutablePointer<Float>,
    _ body: (Range<Int>, UnsafeMutablePointer<Float>, Int) -> Void
) {
    let tasks = imageTaskCount(batch)
    Threads.parallelFor(tasks) { range in
        for t in range { body(batch * t / tasks..<batch * (t + 1) / tasks, columns + t * g.columnsCount, t) }
    }
}

/// Adds per-task partial weight gradients: task 0 writes into `dweight` itself, the others
/// into temporary sums added at the end in task order (so the result does not depend on timing).
private func accumulatingWeightGradient(
    _ dweight: UnsafeMutablePointer<Float>?, count: Int, tasks: Int,
    _ body: (_ partial: (Int) -> UnsafeMutablePointer<Float>?) -> Void
) {
    guard let dweight, tasks > 1 else { body { _ in dweight }; return }
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: (tasks - 1) * count)
    defer { partials.deallocate() }
    partials.initialize(repeating: 0, count: (tasks - 1) * count)
    body { t in t == 0 ? dweight : partials + (t - 1) * count }
    for t in 1..<tasks { axpy(dweight, 1, partials + (t - 1) * count, count) }
}

public func conv2dForward(
    _ out: UnsafeMutablePointer<Float>,   // (B, Cout, gh, gw)
    _ inp: UnsafePointer<Float>,          // (B, Cin, H, W)
    _ weight: UnsafePointer<Float>,       // (Cout, Cin, K, K)
    _ bias: UnsafePointer<Float>?,        // (Cout)
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.scratchCount
    batch: Int, outChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    forEachImageRange(batch, g, columns) { images, scratch, _ in
        for b in images {
            let image = inp + b * g.imageSize
            let cols: UnsafePointer<Float>
            if g.isPointwise { cols = image } else { im2col(scratch, image, g); cols = UnsafePointer(scratch) }
            gemm(m: outChannels, n: gridSize, k: g.columnRows, a: weight, b: cols, c: out + b * outChannels * gridSize)
        }
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
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.scratchCount
    batch: Int, outChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    let tasks = imageTaskCount(batch)
    accumulatingWeightGradient(dweight, count: outChannels * g.columnRows, tasks: tasks) { partial in
        forEachImageRange(batch, g, columns) { images, scratch, task in
            for b in images {
                let image = inp + b * g.imageSize
                let dy = dout + b * outChannels * gridSize
                if let dw = partial(task) {  // dW (Cout, CKK) += dy (Cout, gh·gw) · colsᵀ
                    let cols: UnsafePointer<Float>
                    if g.isPointwise { cols = image } else { im2col(scratch, image, g); cols = UnsafePointer(scratch) }
                    gemm(transposeB: true, m: outChannels, n: g.columnRows, k: gridSize, a: dy, b: cols, beta: 1, c: dw)
                }
                if let dinp {  // dcols (CKK, gh·gw) = Wᵀ · dy, scattered back onto the image
                    let dimage = dinp + b * g.imageSize
                    if g.isPointwise {
                        gemm(transposeA: true, m: g.columnRows, n: gridSize, k: outChannels, a: weight, b: dy, beta: 1, c: dimage)
                    } else {
                        gemm(transposeA: true, m: g.columnRows, n: gridSize, k: outChannels, a: weight, b: dy, c: scratch)
                        col2im(dimage, scratch, g)
                    }
                }
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
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.scratchCount
    batch: Int, inChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    forEachImageRange(batch, g, columns) { images, scratch, _ in
        for b in images {
            let x = inp + b * inChannels * gridSize, image = out + b * g.imageSize
            if g.isPointwise {
                gemm(transposeA: true, m: g.columnRows, n: gridSize, k: inChannels, a: weight, b: x, c: image)
                continue
            }
            // cols (Cout·K·K, gh·gw) = Wᵀ · x, then scattered onto the image
            image.initialize(repeating: 0, count: g.imageSize)
            gemm(transposeA: true, m: g.columnRows, n: gridSize, k: inChannels, a: weight, b: x, c: scratch)
            col2im(image, scratch, g)
        }
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
    _ columns: UnsafeMutablePointer<Float>,  // scratch, g.scratchCount
    batch: Int, inChannels: Int, geometry g: ConvGeometry
) {
    let gridSize = g.gridHeight * g.gridWidth
    let tasks = imageTaskCount(batch)
    accumulatingWeightGradient(dweight, count: inChannels * g.columnRows, tasks: tasks) { partial in
        forEachImageRange(batch, g, columns) { images, scratch, task in
            for b in images {
                let x = inp + b * inChannels * gridSize
                let dimage = dout + b * g.imageSize
                let cols: UnsafePointer<Float>
                if g.isPointwise { cols = dimage } else { im2col(scratch, dimage, g); cols = UnsafePointer(scratch) }
                if let dinp {  // dx (Cin, gh·gw) += W (Cin, Cout·K·K) · cols
                    gemm(m: inChannels, n: gridSize, k: g.columnRows, a: weight, b: cols, beta: 1, c: dinp + b * inChannels * gridSize)
                }
                if let dw = partial(task) {  // dW (Cin, Cout·K·K) += x (Cin, gh·gw) · colsᵀ
                    gemm(transposeB: true, m: inChannels, n: g.columnRows, k: gridSize, a: x, b: cols, beta: 1, c: dw)
                }
            }
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
