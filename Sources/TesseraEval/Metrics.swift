// The yardsticks of text-to-image work, computed on the scorer's unit features: the CLIP score
// (Hessel et al. 2021: 100 · cosine, clipped at 0), R-precision (AttnGAN, Xu et al. 2018: is the
// true caption the scorer's first choice among it and 99 others?) and the Fréchet distance
// between Gaussians fitted to two sets of features (Heusel et al. 2017). The last is FID's
// formula on Tessera scorer features, not Inception features: its values are not comparable
// with the FID figures of papers.
import COpenBLAS
import Foundation
import TesseraTensor

public enum Metrics {
    /// 100 · max(cos(image, text), 0) for each pair of rows (both (N, E), unit length), and
    /// their mean.
    public static func clipScores(images: [Float], texts: [Float], dimension e: Int) -> [Double] {
        precondition(images.count == texts.count && images.count % e == 0, "clipScores: \(images.count) and \(texts.count) values")
        return (0..<images.count / e).map { i in 100 * Double(max(0, cosine(images, i, texts, i, e))) }
    }

    /// R-precision with R = 1 over N generated pictures: picture i's true caption is row
    /// `truth[i]` of `captions` (M, E); it is compared with `others` captions drawn without
    /// replacement from the rest by a generator seeded with `seed` (all of the rest when fewer
    /// remain). Returns the share of pictures whose true caption scores highest (ties count
    /// against it) and how many candidates each picture saw.
    public static func rPrecision(images: [Float], truth: [Int], captions: [Float], dimension e: Int,
                                  others: Int = 99, seed: UInt64 = 0) -> (value: Double, candidates: Int) {
        let count = captions.count / e
        precondition(images.count == truth.count * e && truth.allSatisfy { (0..<count).contains($0) },
                     "rPrecision: \(truth.count) pictures, \(count) captions")
        guard !truth.isEmpty else { return (0, 0) }
        var rng = RandomGenerator(seed: seed)
        var hits = 0
        let drawn = min(others, count - 1)
        for (i, true_) in truth.enumerated() {
            var pool = (0..<count).filter { $0 != true_ }
            rng.shuffle(&pool)
            let own = cosine(images, i, captions, true_, e)
            if pool.prefix(drawn).allSatisfy({ cosine(images, i, captions, $0, e) < own }) { hits += 1 }
        }
        return (Double(hits) / Double(truth.count), drawn + 1)
    }

    static func cosine(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int, _ e: Int) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for k in 0..<e {
            dot += a[i * e + k] * b[j * e + k]
            na += a[i * e + k] * a[i * e + k]
            nb += b[j * e + k] * b[j * e + k]
        }
        return dot / max((na * nb).squareRoot(), 1e-12)
    }
}

/// The mean and covariance of a set of feature rows, in Double.
public struct GaussianStatistics: Sendable {
    public let dimension: Int
    public let mean: [Double]
    /// (E, E), row-major; divided by N − 1.
    public let covariance: [Double]

    /// Rows of `features` (N, E); N ≥ 2.
    public init(features: [Float], dimension e: Int) {
        let n = features.count / e
        precondition(n >= 2 && features.count == n * e, "GaussianStatistics: \(features.count) values in rows of \(e)")
        dimension = e
        var mean = [Double](repeating: 0, count: e)
        for i in 0..<n { for k in 0..<e { mean[k] += Double(features[i * e + k]) } }
        mean = mean.map { $0 / Double(n) }
        var centered = [Double](repeating: 0, count: n * e)
        for i in 0..<n { for k in 0..<e { centered[i * e + k] = Double(features[i * e + k]) - mean[k] } }
        var covariance = [Double](repeating: 0, count: e * e)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(e), Int32(e), Int32(n), 1 / Double(n - 1),
                    centered, Int32(e), centered, Int32(e), 0, &covariance, Int32(e))
        self.mean = mean
        self.covariance = covariance
    }

    public init(mean: [Double], covariance: [Double]) {
        precondition(covariance.count == mean.count * mean.count, "GaussianStatistics: covariance does not match the mean")
        dimension = mean.count
        self.mean = mean
        self.covariance = covariance
    }

    /// ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), the Fréchet distance between the two
    /// Gaussians; tr((Σ₁Σ₂)^½) is computed through the symmetric Σ₁^½ Σ₂ Σ₁^½, whose
    /// eigenvalues are those of Σ₁Σ₂.
    public func frechetDistance(to other: GaussianStatistics) throws -> Double {
        precondition(dimension == other.dimension, "frechetDistance: dimensions \(dimension) and \(other.dimension)")
        let e = dimension
        var distance = zip(mean, other.mean).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        for k in 0..<e { distance += covariance[k * e + k] + other.covariance[k * e + k] }
        let root = try symmetricSquareRoot(covariance, e)
        var product = [Double](repeating: 0, count: e * e), middle = [Double](repeating: 0, count: e * e)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(e), Int32(e), Int32(e), 1, root, Int32(e),
                    other.covariance, Int32(e), 0, &product, Int32(e))
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(e), Int32(e), Int32(e), 1, product, Int32(e),
                    root, Int32(e), 0, &middle, Int32(e))
        for k in 0..<e { for j in 0..<k { middle[k * e + j] = 0.5 * (middle[k * e + j] + middle[j * e + k]) } }
        let (values, _) = try symmetricEigen(middle, e)
        distance -= 2 * values.reduce(0) { $0 + max($1, 0).squareRoot() }
        return max(distance, 0)
    }
}

/// Eigenvalues (ascending) and eigenvectors (rows) of a symmetric (n, n) matrix, of which the
/// lower triangle is read, by LAPACK's dsyev.
func symmetricEigen(_ matrix: [Double], _ n: Int) throws -> (values: [Double], vectors: [Double]) {
    // Column-major for LAPACK: the row-major lower triangle is the column-major upper one.
    var a = matrix, values = [Double](repeating: 0, count: n), info: Int32 = 0
    var size = Int32(n), lwork: Int32 = -1, query: Double = 0
    dsyev_("V", "U", &size, &a, &size, &values, &query, &lwork, &info, 1, 1)
    lwork = Int32(query)
    var work = [Double](repeating: 0, count: max(1, Int(lwork)))
    dsyev_("V", "U", &size, &a, &size, &values, &work, &lwork, &info, 1, 1)
    guard info == 0 else { throw TesseraError("the eigensolver did not converge (dsyev info \(info))") }
    return (values, a)  // column j of the column-major result is row j here
}

/// Σ^½ of a symmetric positive semi-definite matrix (negative eigenvalues, from rounding, are
/// taken as zero).
func symmetricSquareRoot(_ matrix: [Double], _ n: Int) throws -> [Double] {
    let (values, vectors) = try symmetricEigen(matrix, n)
    var root = [Double](repeating: 0, count: n * n)
    for v in 0..<n {
        let s = max(values[v], 0).squareRoot()
        guard s > 0 else { continue }
        for i in 0..<n { for j in 0..<n { root[i * n + j] += s * vectors[v * n + i] * vectors[v * n + j] } }
    }
    return root
}
