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
/// Here eight rows of B at a time are dotted with each row of A: eight independent chains of
/// fused multiply-adds keep both FMA pipes busy, the eight rows stay in L1 while every row of A
/// passes, and one shuffle tree reduces the eight sums into one vector store. Threads split
/// the rows of B once each gets 2¹⁴ multiply-adds (the pool starts a job in about a µs).
/// One row takes this path too: OpenBLAS runs single-threaded here, so its matrix–vector
/// product would leave a core idle while a picture decodes.
func fewRowsTimesTransposed(
    m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let groups = (n + 7) / 8
    Threads.parallelFor(groups, minimumChunk: max(1, (1 << 14) / (8 * m * k))) { range in
        for group in range {
            let j = group * 8
            if j + 8 > n {  // the last few rows of B
                for i in 0..<m { for jj in j..<n {
                    let out = c + i * ldc + jj, value = alpha * dot(a + i * lda, b + jj * ldb, k)
                    out.pointee = beta == 0 ? value : value + beta * out.pointee
                } }
                continue
            }
            let w0 = b + j * ldb, w1 = w0 + ldb, w2 = w1 + ldb, w3 = w2 + ldb
            let w4 = w3 + ldb, w5 = w4 + ldb, w6 = w5 + ldb, w7 = w6 + ldb
            for i in 0..<m {
                let row = a + i * lda
                var acc0 = Vec8(), acc1 = Vec8(), acc2 = Vec8(), acc3 = Vec8()
                var acc4 = Vec8(), acc5 = Vec8(), acc6 = Vec8(), acc7 = Vec8()
                var p = 0
                while p &+ 8 <= k {
                    let x = load8(row + p)
                    acc0 = acc0.addingProduct(x, load8(w0 + p))
                    acc1 = acc1.addingProduct(x, load8(w1 + p))
                    acc2 = acc2.addingProduct(x, load8(w2 + p))
                    acc3 = acc3.addingProduct(x, load8(w3 + p))
                    acc4 = acc4.addingProduct(x, load8(w4 + p))
                    acc5 = acc5.addingProduct(x, load8(w5 + p))
                    acc6 = acc6.addingProduct(x, load8(w6 + p))
                    acc7 = acc7.addingProduct(x, load8(w7 + p))
                    p &+= 8
                }
                var sums = laneSums(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7)
                while p < k {
                    let x = row[p]
                    for r in 0..<8 { sums[r] += x * w0[r * ldb + p] }
                    p += 1
                }
                let out = c + i * ldc + j
                var result = alpha * sums
                if beta != 0 { result += beta * load8(out) }
                UnsafeMutableRawPointer(out).storeBytes(of: result, as: Vec8.self)
            }
        }
    }
}

/// (Σ a0, Σ a1, …, Σ a7): the eight vectors' lane sums in one vector, by a tree of shuffles
/// and adds instead of eight serial horizontal sums.
@inline(__always)
func laneSums(_ a0: Vec8, _ a1: Vec8, _ a2: Vec8, _ a3: Vec8,
              _ a4: Vec8, _ a5: Vec8, _ a6: Vec8, _ a7: Vec8) -> Vec8 {
    // Each step halves every vector's partial sums and packs two vectors' halves into one.
    func fold(_ x: Vec8, _ y: Vec8) -> Vec8 {
        Vec8(lowHalf: x.lowHalf + x.highHalf, highHalf: y.lowHalf + y.highHalf)
    }
    func pairs(_ x: Vec8, _ y: Vec8) -> Vec8 {
        Vec8(lowHalf: x.evenHalf + x.oddHalf, highHalf: y.evenHalf + y.oddHalf)
    }
    let q0 = pairs(fold(a0, a1), fold(a2, a3))  // (a0, a0, a1, a1, a2, a2, a3, a3) partials
    let q1 = pairs(fold(a4, a5), fold(a6, a7))
    return Vec8(lowHalf: q0.evenHalf + q0.oddHalf, highHalf: q1.evenHalf + q1.oddHalf)
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
