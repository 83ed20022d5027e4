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
    let lda = lda ?? (transposeA ? m : k)
    let ldb = ldb ?? (transposeB ? k : n)
    let ldc = ldc ?? n
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha,
        a, Int32(max(1, lda)), b, Int32(max(1, ldb)), beta, c, Int32(max(1, ldc)))
}

/// `count` independent products C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i], where
/// matrix i starts `strideA · i` floats after `a` (likewise B, C). A stride of 0 shares
/// one matrix across the batch. Small products run one per thread with single-threaded
/// BLAS; large ones run in turn, each with all of OpenBLAS's threads.
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
    // Below about 128³ multiply-adds OpenBLAS gains little from a second thread per product.
    if m * n * k < 128 * 128 * 128 {
        Threads.parallelFor(count, callsBLAS: true) { range in range.forEach(product) }
    } else {
        (0..<count).forEach(product)
    }
}
