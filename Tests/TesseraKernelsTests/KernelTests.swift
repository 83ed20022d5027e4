// Every fast kernel against the naive Double loops of TesseraTestSupport, at sizes that hit
// the SIMD tails (not multiples of 16) and sizes large enough to split across threads.
import Foundation
import Testing
import TesseraKernels
import TesseraTensor
import TesseraTestSupport

/// A random Float buffer that frees itself.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, seed: UInt64, scale: Float = 1) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
        var rng = RandomGenerator(seed: seed)
        rng.fillNormal(pointer, count: count, std: scale)
    }
    init(zeros count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }
    deinit { pointer.deallocate() }
    var doubles: [Double] { (0..<count).map { Double(pointer[$0]) } }
    var floats: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// max |a − b| / max(1, |b|).
func maxError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1) / max(1, abs($1.1))) }
}

@Suite struct Reductions {
    @Test(arguments: [0, 1, 15, 16, 17, 33, 1000, 4099])
    func reductionsMatchDouble(count: Int) {
        let x = Buffer(count, seed: 1), y = Buffer(count, seed: 2)
        let xs = x.doubles, ys = y.doubles
        let scale = max(1, Double(count).squareRoot())
        #expect(abs(Double(sum(x.pointer, count)) - xs.reduce(0, +)) <= 1e-5 * scale)
        #expect(abs(Double(dot(x.pointer, y.pointer, count)) - zip(xs, ys).reduce(0) { $0 + $1.0 * $1.1 }) <= 1e-5 * scale)
        let center = 0.25
        let squares = xs.reduce(0) { $0 + ($1 - center) * ($1 - center) }
        #expect(abs(Double(sumOfSquares(x.pointer, count, center: 0.25)) - squares) <= 1e-5 * max(1, squares))
        #expect(Double(maximum(x.pointer, count)) == (xs.max() ?? -.infinity))
    }

    @Test func fastExpIsAccurateOverItsRange() {
        var worst = 0.0
        var x: Float = -86.9
        while x <= 88 {
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(fastExp(x)) - exact) / exact)
            x += 0.001_7
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
        #expect(fastExp(-1000) == 0 && fastExp(-.infinity) == 0 && fastExp(1000).isFinite)
    }

    @Test func nonPositiveExpIsAccurateAndExactlyZeroWhereMasked() {
        var worstNonPositive = 0.0
        var x: Float = -87
        while x <= 0 {
            let lanes = Vec8((0..<8).map { x + Float($0) * 0.000_21 })
            let nonPositive = fastExpNonPositive(lanes)
            for lane in 0..<8 {
                let exact = Foundation.exp(Double(lanes[lane]))
                worstNonPositive = max(worstNonPositive, abs(Double(nonPositive[lane]) - exact) / exact)
            }
            x += 0.003_1
        }
        #expect(worstNonPositive < 3e-7, "worst relative error \(worstNonPositive)")
        let masked = fastExpNonPositive(Vec8(-.infinity, -1000, -88, -87.7, 0, 0, 0, 0))
        #expect(masked[0] == 0 && masked[1] == 0 && masked[2] == 0 && masked[3] == 0 && masked[4] == 1)
    }
}

@Suite struct MatrixProducts {
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmMatchesNaiveWithLeadingDimensions(transposeA: Bool, transposeB: Bool) {
        let (m, n, k) = (37, 29, 53)
        // Operands live inside wider matrices: leading dimensions larger than the rows.
        let (lda, ldb, ldc) = ((transposeA ? m : k) + 3, (transposeB ? k : n) + 5, n + 2)
        let a = Buffer((transposeA ? k : m) * lda, seed: 3), b = Buffer((transposeB ? n : k) * ldb, seed: 4)
        let c = Buffer((m - 1) * ldc + n, seed: 5)
        let before = c.doubles
        gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5,
             a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 2, c: c.pointer, ldc: ldc)
        // Pack the views and compare with the naive product.
        let packedA = (0..<(transposeA ? k : m)).flatMap { r in (0..<(transposeA ? m : k)).map { a.doubles[r * lda + $0] } }
        let packedB = (0..<(transposeB ? n : k)).flatMap { r in (0..<(transposeB ? k : n)).map { b.doubles[r * ldb + $0] } }
        let product = Reference.matmul(packedA, packedB, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        var error = 0.0
        for i in 0..<m { for j in 0..<n {
            let expected = 0.5 * product[i * n + j] + 2 * before[i * ldc + j]
            error = max(error, abs(Double(c.pointer[i * ldc + j]) - expected) / max(1, abs(expected)))
        } }
        #expect(error < 1e-5)
        // The padding between rows is untouched.
        #expect(c.pointer[n] == Float(before[n]))
    }

    /// One to eight rows times a transposed matrix (decoding's x·Wᵀ) take their own kernel: odd sizes,
    /// SIMD tails, blocks of four rows of B with a remainder, and a split across threads.
    @Test(arguments: [(2, 37, 16, Float(0)), (3, 37, 53, 2), (8, 2001, 256, 0), (8, 9, 300, -1), (1, 5, 20, 1), (1, 1001, 256, 0), (9, 5, 20, 1)])
    func fewRowsTimesTransposedMatchesNaive(m: Int, n: Int, k: Int, beta: Float) {
        let (lda, ldb, ldc) = (k + 1, k + 3, n + 2)
        let a = Buffer(m * lda, seed: 8), b = Buffer(n * ldb, seed: 9), c = Buffer((m - 1) * ldc + n, seed: 10)
        let before = c.doubles
        gemm(transposeB: true, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
             beta: beta, c: c.pointer, ldc: ldc)
        let (x, w) = (a.doubles, b.doubles)
        var error = 0.0
        for i in 0..<m { for j in 0..<n {
            let product = (0..<k).reduce(0.0) { $0 + x[i * lda + $1] * w[j * ldb + $1] }
            let expected = 0.5 * product + Double(beta) * before[i * ldc + j]
            error = max(error, abs(Double(c.pointer[i * ldc + j]) - expected) / max(1, abs(expected)))
        } }
        #expect(error < 1e-5)
    }

    /// Products large enough to be split over the threads, by rows of C and (few rows) by
    /// columns, every transpose, padded leading dimensions, beta ≠ 0.
    @Test(arguments: [(150, 130, 120, false, false), (150, 130, 120, true, true), (20, 900, 200, false, true),
                      (20, 900, 200, true, false)])
    func largeProductsSplitAcrossThreadsMatchNaive(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool) {
        let (rowsA, columnsA) = transposeA ? (k, m) : (m, k), (rowsB, columnsB) = transposeB ? (n, k) : (k, n)
        let (lda, ldb, ldc) = (columnsA + 3, columnsB + 1, n + 2)
        let a = Buffer(rowsA * lda, seed: 11), b = Buffer(rowsB * ldb, seed: 12), c = Buffer(m * ldc, seed: 13)
        let before = c.doubles
        gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda,
             b: b.pointer, ldb: ldb, beta: 2, c: c.pointer, ldc: ldc)
        let (x, w) = (a.doubles, b.doubles)
        var error = 0.0
        for i in 0..<m { for j in 0..<n {
            let product = (0..<k).reduce(0.0) { sum, p in
                sum + x[transposeA ? p * lda + i : i * lda + p] * w[transposeB ? j * ldb + p : p * ldb + j]
            }
            let expected = 0.5 * product + 2 * before[i * ldc + j]
            error = max(error, abs(Double(c.pointer[i * ldc + j]) - expected) / max(1, abs(expected)))
        } }
        #expect(error < 1e-5)
    }

    @Test func batchedGemmWithSharedOperand() {
        let (batch, m, n, k) = (5, 6, 7, 8)
        let a = Buffer(batch * m * k, seed: 6), b = Buffer(k * n, seed: 7), c = Buffer(zeros: batch * m * n)
        batchedGemm(count: batch, m: m, n: n, k: k, a: a.pointer, strideA: m * k, b: b.pointer, strideB: 0,
                    c: c.pointer, strideC: m * n)
        for i in 0..<batch {
            let expected = Reference.matmul(Array(a.doubles[i * m * k..<(i + 1) * m * k]), b.doubles, m: m, n: n, k: k)
            #expect(maxError(Array(c.floats[i * m * n..<(i + 1) * m * n]), expected) < 1e-5)
        }
    }
}

@Suite struct RowKernels {
    // 4,099 × 67 splits across threads and leaves SIMD tails in every row.
    static let rows = 4099, columns = 67

    @Test func layerNormForwardAndBackward() {
        let (rows, columns) = (Self.rows, Self.columns)
        let x = Buffer(rows * columns, seed: 8, scale: 2), w = Buffer(columns, seed: 9), b = Buffer(columns, seed: 10)
        let y = Buffer(zeros: rows * columns), mean = Buffer(zeros: rows), rstd = Buffer(zeros: rows)
        layerNormForward(y.pointer, mean.pointer, rstd.pointer, x.pointer, w.pointer, b.pointer, rows: rows, channels: columns)
        #expect(maxError(y.floats, Reference.layerNorm(x.doubles, w.doubles, b.doubles, rows: rows, channels: columns)) < 1e-5)
        // Backward adds: start from nonzero gradients and check the increment.
        let dy = Buffer(rows * columns, seed: 11), dx = Buffer(rows * columns, seed: 12)
        let dw = Buffer(columns, seed: 13), db = Buffer(columns, seed: 14)
        let (dx0, dw0, db0) = (dx.doubles, dw.doubles, db.doubles)
        layerNormBackward(dx.pointer, dw.pointer, db.pointer, dy.pointer, x.pointer, w.pointer, mean.pointer, rstd.pointer,
                          rows: rows, channels: columns)
        // Naive: per row, dx = s·(g − mean(g) − n·mean(g·n)) with g = w·dy.
        var expectedDx = dx0, expectedDw = dw0, expectedDb = db0
        let xs = x.doubles, ws = w.doubles, dys = dy.doubles
        for r in 0..<rows {
            let row = Array(xs[r * columns..<(r + 1) * columns])
            let m = row.reduce(0, +) / Double(columns)
            let s = 1 / (row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(columns) + 1e-5).squareRoot()
            let n = row.map { ($0 - m) * s }, g = (0..<columns).map { ws[$0] * dys[r * columns + $0] }
            let meanG = g.reduce(0, +) / Double(columns), meanGN = zip(g, n).reduce(0) { $0 + $1.0 * $1.1 } / Double(columns)
            for c in 0..<columns {
                expectedDx[r * columns + c] += s * (g[c] - meanG - n[c] * meanGN)
                expectedDw[c] += dys[r * columns + c] * n[c]
                expectedDb[c] += dys[r * columns + c]
            }
        }
        #expect(maxError(dx.floats, expectedDx) < 1e-4)
        #expect(maxError(dw.floats, expectedDw) < 1e-4)
        #expect(maxError(db.floats, expectedDb) < 1e-4)
    }

    @Test func softmaxForwardAndBackward() {
        let (rows, columns) = (Self.rows, Self.columns)
        let x = Buffer(rows * columns, seed: 15, scale: 4), y = Buffer(zeros: rows * columns)
        softmaxForward(y.pointer, x.pointer, rows: rows, columns: columns)
        let expected = Reference.softmax(x.doubles, rows: rows, columns: columns)
        #expect(maxError(y.floats, expected) < 1e-6)
        let dy = Buffer(rows * columns, seed: 16), dx = Buffer(zeros: rows * columns)
        softmaxBackward(dx.pointer, y.pointer, dy.pointer, rows: rows, columns: columns)
        var naive = [Double](repeating: 0, count: rows * columns)
        let dys = dy.doubles
        for r in 0..<rows {
            let inner = (0..<columns).reduce(0.0) { $0 + dys[r * columns + $1] * expected[r * columns + $1] }
            for c in 0..<columns { naive[r * columns + c] = expected[r * columns + c] * (dys[r * columns + c] - inner) }
        }
        #expect(maxError(dx.floats, naive) < 1e-5)
    }

    @Test func elementwiseActivationsAtThreadedSizes() {
        let count = 200_003
        let x = Buffer(count, seed: 17, scale: 4), y = Buffer(zeros: count)
        geluForward(y.pointer, x.pointer, count)
        #expect(maxError(y.floats, Reference.gelu(x.doubles)) < 1e-6)
        siluForward(y.pointer, x.pointer, count)
        #expect(maxError(y.floats, Reference.silu(x.doubles)) < 1e-6)
        reluForward(y.pointer, x.pointer, count)
        #expect(maxError(y.floats, Reference.relu(x.doubles)) == 0)
    }

    @Test func crossEntropyWithIgnoreIndexAndWeights() {
        let (rows, classes) = (1000, 37)
        let logits = Buffer(rows * classes, seed: 18, scale: 3)
        var rng = RandomGenerator(seed: 19)
        let targets: [Int32] = (0..<rows).map { _ in rng.int(below: 5) == 0 ? -100 : Int32(rng.int(below: classes)) }
        let weights: [Float] = (0..<rows).map { _ in rng.uniform() }
        let lse = Buffer(zeros: rows)
        let total = crossEntropyForward(lse.pointer, logits.pointer, targets, weights, rows: rows, classes: classes, ignoreIndex: -100)
        let expected = Reference.crossEntropy(logits.doubles, targets: targets, weights: weights.map(Double.init),
                                              classes: classes, ignoreIndex: -100)
        #expect(abs(total - expected) / expected < 1e-6)
        let dlogits = Buffer(zeros: rows * classes)
        crossEntropyBackward(dlogits.pointer, logits.pointer, lse.pointer, targets, weights, dloss: 1,
                             rows: rows, classes: classes, ignoreIndex: -100)
        let p = Reference.softmax(logits.doubles, rows: rows, columns: classes)
        var naive = [Double](repeating: 0, count: rows * classes)
        for r in 0..<rows where targets[r] != -100 {
            for c in 0..<classes { naive[r * classes + c] = Double(weights[r]) * (p[r * classes + c] - (c == Int(targets[r]) ? 1 : 0)) }
        }
        #expect(maxError(dlogits.floats, naive) < 1e-6)
    }
}

@Suite struct Convolutions {
    /// Narrow images take the scalar paths; wide stride-2 ones the eight-lane paths, up to the
    /// end of each plane (the last image's last row must not be read past).
    @Test(arguments: [ConvGeometry(channels: 3, height: 9, width: 7, kernel: 4, stride: 2, padding: 1),
                      ConvGeometry(channels: 2, height: 11, width: 45, kernel: 4, stride: 2, padding: 1),
                      ConvGeometry(channels: 2, height: 8, width: 64, kernel: 3, stride: 2, padding: 0)])
    func im2colGathersEveryTapAndCol2imIsItsAdjoint(g: ConvGeometry) {
        let image = Buffer(g.imageSize, seed: 20), columns = Buffer(g.columnsCount, seed: 21)
        let imageColumns = Buffer(zeros: g.columnsCount), back = Buffer(zeros: g.imageSize)
        im2col(imageColumns.pointer, image.pointer, g)
        let (gh, gw, k) = (g.gridHeight, g.gridWidth, g.kernel)
        var gathered = [Double](repeating: 0, count: g.columnsCount)
        let pixels = image.doubles
        for c in 0..<g.channels { for ky in 0..<k { for kx in 0..<k { for oy in 0..<gh { for ox in 0..<gw {
            let (y, x) = (oy * g.stride - g.padding + ky, ox * g.stride - g.padding + kx)
            let inside = y >= 0 && y < g.height && x >= 0 && x < g.width
            gathered[((c * k + ky) * k + kx) * gh * gw + oy * gw + ox] = inside ? pixels[(c * g.height + y) * g.width + x] : 0
        } } } } }
        #expect(maxError(imageColumns.floats, gathered) == 0)
        col2im(back.pointer, columns.pointer, g)
        // ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩
        let lhs = zip(imageColumns.doubles, columns.doubles).reduce(0) { $0 + $1.0 * $1.1 }
        let rhs = zip(image.doubles, back.doubles).reduce(0) { $0 + $1.0 * $1.1 }
        #expect(abs(lhs - rhs) < 1e-4 * max(1, abs(lhs)))
    }

    @Test(arguments: [(3, 1, 1), (4, 2, 1), (1, 1, 0)])
    func convolutionKernelsMatchNaive(kernel: Int, stride: Int, padding: Int) {
        let (batch, inChannels, outChannels, height, width) = (3, 5, 6, 12, 10)
        let g = ConvGeometry(channels: inChannels, height: height, width: width, kernel: kernel, stride: stride, padding: padding)
        let x = Buffer(batch * g.imageSize, seed: 22), w = Buffer(outChannels * g.columnRows, seed: 23), b = Buffer(outChannels, seed: 24)
        let gridSize = g.gridHeight * g.gridWidth
        let y = Buffer(zeros: batch * outChannels * gridSize), columns = Buffer(zeros: g.scratchCount)
        conv2dForward(y.pointer, x.pointer, w.pointer, b.pointer, columns.pointer, batch: batch, outChannels: outChannels, geometry: g)
        let expected = Reference.conv2d(x.doubles, w.doubles, b.doubles, batch: batch, inChannels: inChannels, height: height,
                                        width: width, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
        #expect(maxError(y.floats, expected) < 1e-5)

        // The transposed convolution maps the grid back to an image of the same geometry.
        let out = Buffer(zeros: batch * g.imageSize)
        let wt = Buffer(outChannels * g.columnRows, seed: 25), bt = Buffer(inChannels, seed: 26)
        convTranspose2dForward(out.pointer, y.pointer, wt.pointer, bt.pointer, columns.pointer,
                               batch: batch, inChannels: outChannels, geometry: g)
        let expectedT = Reference.convTranspose2d(y.doubles, wt.doubles, bt.doubles, batch: batch, inChannels: outChannels,
                                                  height: g.gridHeight, width: g.gridWidth, outChannels: inChannels,
                                                  kernel: kernel, stride: stride, padding: padding)
        #expect(expectedT.count == out.count)
        #expect(maxError(out.floats, expectedT) < 1e-4)
    }

    @Test func upsampleForwardAndBackward() {
        let x = Buffer(2 * 3 * 5 * 4, seed: 27), y = Buffer(zeros: 2 * 3 * 15 * 12)
        upsampleNearestForward(y.pointer, x.pointer, planes: 6, height: 5, width: 4, factor: 3)
        #expect(maxError(y.floats, Reference.upsampleNearest(x.doubles, planes: 6, height: 5, width: 4, factor: 3)) == 0)
        let dx = Buffer(zeros: x.count)
        upsampleNearestBackward(dx.pointer, y.pointer, planes: 6, height: 5, width: 4, factor: 3)
        #expect(maxError(dx.floats, x.doubles.map { 9 * $0 }) < 1e-6)  // each input copied 9 times
    }
}

@Suite struct Optimiser {
    @Test func adamWMatchesTheFormula() {
        let count = 100_001
        let p = Buffer(count, seed: 28), m = Buffer(zeros: count), v = Buffer(zeros: count)
        var expectedP = p.doubles, expectedM = [Double](repeating: 0, count: count), expectedV = expectedM
        let h = AdamWHyperparameters(learningRate: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.1)
        for step in 1...3 {
            let g = Buffer(count, seed: 100 + UInt64(step))
            adamWUpdate(p.pointer, g.pointer, m.pointer, v.pointer, count: count, step: step, hyper: h, gradientScale: 0.5)
            let gs = g.doubles
            for i in 0..<count {
                let grad = 0.5 * gs[i]
                expectedM[i] = 0.9 * expectedM[i] + 0.1 * grad
                expectedV[i] = 0.99 * expectedV[i] + 0.01 * grad * grad
                let update = (expectedM[i] / (1 - pow(0.9, Double(step)))) / ((expectedV[i] / (1 - pow(0.99, Double(step)))).squareRoot() + 1e-8)
                expectedP[i] = expectedP[i] * (1 - 0.01 * 0.1) - 0.01 * update
            }
        }
        #expect(maxError(p.floats, expectedP) < 1e-5)
    }

    /// The 16-lane body and the scalar tail compute every element bit for bit alike, so a run's
    /// numbers do not depend on where the vector chunks fall.
    @Test func adamWLanesMatchTheScalarTail() {
        let count = 1_000
        let h = AdamWHyperparameters(learningRate: 0.003, beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1)
        let whole = (p: Buffer(count, seed: 31), m: Buffer(count, seed: 32), v: Buffer(count, seed: 33))
        let single = (p: Buffer(count, seed: 31), m: Buffer(count, seed: 32), v: Buffer(count, seed: 33))
        for i in 0..<count { whole.v.pointer[i] = abs(whole.v.pointer[i]); single.v.pointer[i] = abs(single.v.pointer[i]) }
        let g = Buffer(count, seed: 34)
        adamWUpdate(whole.p.pointer, g.pointer, whole.m.pointer, whole.v.pointer, count: count, step: 7, hyper: h, gradientScale: 0.8)
        for i in 0..<count {  // one element at a time: always the tail
            adamWUpdate(single.p.pointer + i, g.pointer + i, single.m.pointer + i, single.v.pointer + i, count: 1, step: 7,
                        hyper: h, gradientScale: 0.8)
        }
        #expect(whole.p.floats == single.p.floats && whole.m.floats == single.m.floats && whole.v.floats == single.v.floats)
    }
}

@Suite struct Threading {
    @Test(arguments: [0, 1, 7, 1000, 100_003])
    func parallelForCoversEveryIndexOnce(count: Int) {
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, count))
        hits.initialize(repeating: 0, count: max(1, count))
        defer { hits.deallocate() }
        Threads.parallelFor(count, minimumChunk: 3) { range in for i in range { hits[i] += 1 } }
        #expect((0..<count).allSatisfy { hits[$0] == 1 })
    }
}

@Suite struct BLASCoreChoice {
    @Test func avx512KernelsUnlessTesseraIsToldOtherwise() {
        func core(_ environment: [String: String], loaded: String, avx512: Bool = true) -> String? {
            BLASRuntime.relaunchCore(environment: environment, loadedCore: loaded, cpuHasAVX512: avx512)
        }
        #expect(core([:], loaded: "Haswell") == BLASRuntime.fastCoreType)
        #expect(core(["OPENBLAS_CORETYPE": "Haswell"], loaded: "Haswell") == BLASRuntime.fastCoreType)
        #expect(core([:], loaded: "Cooperlake") == nil)
        #expect(core([:], loaded: "Haswell", avx512: false) == nil)
        #expect(core(["TESSERA_BLAS_CORE": "Haswell"], loaded: "Cooperlake") == "Haswell")
        #expect(core(["TESSERA_BLAS_CORE": "haswell"], loaded: "Haswell") == nil)
        #expect(core(["TESSERA_BLAS_RELAUNCHED": "1"], loaded: "Haswell") == nil)
    }
}
