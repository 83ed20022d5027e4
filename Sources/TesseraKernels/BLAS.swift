// Matrix products through OpenBLAS cblas_sgemm, row-major throughout, plus the runtime facts
// `tessera bench` reports (which core OpenBLAS picked, how many threads it runs).
import COpenBLAS

/// C (m, n) = alpha · op(A) (m, k) · op(B) (k, n) + beta · C, all row-major.
/// op(A) is A (m, k) when `transposeA` is false and Aᵀ with A stored as (k, m) when true;
/// likewise B. Leading dimensions default to packed rows.
public func gemm(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int? = nil,
    b: UnsafePointer<Float>, ldb: Int? = nil,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int? = nil
) {
    precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
    if m == 0 || n == 0 { return }
    _ = openBLASIsSerial
    let lda = lda ?? (transposeA ? m : k)
    let ldb = ldb ?? (transposeB ? k : n)
    let ldc = ldc ?? n
    if !transposeA && transposeB && (1...fewRows).contains(m) && k >= 16 {
        return fewRowsTimesTransposed(m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    func product(rows: Range<Int>, columns: Range<Int>) {
        let aStart = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
        let bStart = transposeB ? b + columns.lowerBound * ldb : b + columns.lowerBound
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(rows.count), Int32(columns.count), Int32(k), alpha,
            aStart, Int32(max(1, lda)), bStart, Int32(max(1, ldb)), beta,
            c + rows.lowerBound * ldc + columns.lowerBound, Int32(max(1, ldc)))
    }
    // Large products are split over Tessera's threads, by rows of C (or by columns when there
    // are few rows), each part a single-threaded OpenBLAS call; small ones run as one call.
    let work = m * n * k
    if Threads.count > 1 && work >= 2 * gemmWorkPerThread {
        if m >= n || m >= 64 * Threads.count {
            Threads.parallelFor(m, minimumChunk: max(1, gemmWorkPerThread / max(1, n * k))) { rows in
                product(rows: rows, columns: 0..<n)
            }
        } else {
            Threads.parallelFor(n, minimumChunk: max(1, gemmWorkPerThread / max(1, m * k))) { columns in
                product(rows: 0..<m, columns: columns)
            }
        }
        return
    }
    product(rows: 0..<m, columns: 0..<n)
}

/// OpenBLAS runs single-threaded in every process that calls these kernels (the tool sets it
/// at startup too; this covers tests and other programs): with its threads on, a product's bits
/// could depend on whether some concurrent caller had turned them off, and its spinning
/// threads fight Tessera's own. Set once, before the first product.
private let openBLASIsSerial: Void = BLASRuntime.leaveThreadingToTessera()

/// Multiply-adds a thread takes on at least before a product is split (below, one call).
let gemmWorkPerThread = 1 << 20

/// Up to this many rows of A, x·Wᵀ products skip OpenBLAS (see `fewRowsTimesTransposed`).
let fewRows = 8

/// C (m, n) = alpha · A (m, k) · Bᵀ + beta · C with B stored (n, k) and few rows: a batch's
/// decoding step x·Wᵀ. OpenBLAS packs all of B on every such call and splits it between its
/// threads, which thrash when another process keeps the cores busy: eight pictures took 126 s
/// through OpenBLAS and 2.5 s here with two trainings running (`tessera generate --count 8`).
/// Here each row of B is read once and dotted with every row of A, four rows of B at a time in
/// 8-lane registers. Threads split the rows of B when each gets at least 2¹⁶ multiply-adds.
/// One row takes this path too: OpenBLAS runs single-threaded here, so its matrix–vector
/// product would leave a core idle while a picture decodes.
func fewRowsTimesTransposed(
    m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    func store(_ value: Float, _ i: Int, _ j: Int) {
        let out = c + i * ldc + j
        out.pointee = beta == 0 ? alpha * value : alpha * value + beta * out.pointee
    }
    Threads.parallelFor(n, minimumChunk: max(4, (1 << 16) / (m * k))) { columns in
        var j = columns.lowerBound
        while j + 4 <= columns.upperBound {
            let (b0, b1, b2, b3) = (b + j * ldb, b + (j + 1) * ldb, b + (j + 2) * ldb, b + (j + 3) * ldb)
            for i in 0..<m {
                let row = a + i * lda
                var acc0 = Vec8(), acc1 = Vec8(), acc2 = Vec8(), acc3 = Vec8()
                var p = 0
                while p + 8 <= k {
                    let x = load8(row + p)
                    acc0 += x * load8(b0 + p)
                    acc1 += x * load8(b1 + p)
                    acc2 += x * load8(b2 + p)
                    acc3 += x * load8(b3 + p)
                    p += 8
                }
                var sums = (acc0.sum(), acc1.sum(), acc2.sum(), acc3.sum())
                while p < k {
                    let x = row[p]
                    sums.0 += x * b0[p]
                    sums.1 += x * b1[p]
                    sums.2 += x * b2[p]
                    sums.3 += x * b3[p]
                    p += 1
                }
                store(sums.0, i, j)
                store(sums.1, i, j + 1)
                store(sums.2, i, j + 2)
                store(sums.3, i, j + 3)
            }
            j += 4
        }
        while j < columns.upperBound {
            for i in 0..<m { store(dot(a + i * lda, b + j * ldb, k), i, j) }
            j += 1
        }
    }
}

/// Eight float lanes: one AVX2 register.
typealias Vec8 = SIMD8<Float>

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Vec8 {
    UnsafeRawPointer(p).loadUnaligned(as: Vec8.self)
}

/// `count` independent products C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i], where
/// matrix i starts `strideA · i` floats after `a` (likewise B, C). A stride of 0 shares
/// one matrix across the batch. Small products run one per thread; large ones run in turn,
/// each split over the threads by `gemm`.
public func batchedGemm(
    count: Int,
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, strideA: Int, lda: Int? = nil,
    b: UnsafePointer<Float>, strideB: Int, ldb: Int? = nil,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, strideC: Int, ldc: Int? = nil
) {
    func product(_ i: Int) {
        gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
             a: a + strideA * i, lda: lda, b: b + strideB * i, ldb: ldb,
             beta: beta, c: c + strideC * i, ldc: ldc)
    }
    // Below about 128³ multiply-adds a product gains little from being split.
    if m * n * k < 128 * 128 * 128 {
        Threads.parallelFor(count) { range in range.forEach(product) }
    } else {
        (0..<count).forEach(product)
    }
}
