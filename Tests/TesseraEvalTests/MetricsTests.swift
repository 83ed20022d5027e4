import Foundation
import Testing
import TesseraTensor
import TesseraEval

@Suite struct MetricsTests {
    /// Rows of n samples with exactly the given mean and covariance would need care; instead
    /// the closed form is checked on statistics given directly.
    @Test func frechetDistanceOfDiagonalGaussiansIsTheClosedForm() throws {
        let a = GaussianStatistics(mean: [1, 2, 3], covariance: [4, 0, 0, 0, 9, 0, 0, 0, 1])
        let b = GaussianStatistics(mean: [0, 2, 5], covariance: [1, 0, 0, 0, 4, 0, 0, 0, 1])
        // ‖Δμ‖² = 1 + 0 + 4; Σ (σa − σb)² = (2 − 1)² + (3 − 2)² + 0
        #expect(abs(try a.frechetDistance(to: b) - 7) < 1e-9)
        #expect(abs(try a.frechetDistance(to: a)) < 1e-9)
    }

    @Test func frechetDistanceOfRotatedGaussiansIsTheClosedForm() throws {
        // Σ = R D Rᵀ with the same rotation R for both: the distance is Σ (√da − √db)².
        let c = cos(0.7), s = sin(0.7)
        func rotated(_ d: [Double]) -> [Double] {
            let r = [c, -s, s, c]
            var out = [Double](repeating: 0, count: 4)
            for i in 0..<2 { for j in 0..<2 { for k in 0..<2 { out[i * 2 + j] += r[i * 2 + k] * d[k] * r[j * 2 + k] } } }
            return out
        }
        let a = GaussianStatistics(mean: [0, 0], covariance: rotated([9, 1]))
        let b = GaussianStatistics(mean: [3, 4], covariance: rotated([4, 16]))
        let expected = 25.0 + (3.0 - 2.0) * (3.0 - 2.0) + (1.0 - 4.0) * (1.0 - 4.0)
        #expect(abs(try a.frechetDistance(to: b) - expected) < 1e-9)
    }

    @Test func statisticsOfRowsAreTheSampleMeanAndCovariance() {
        let rows: [Float] = [1, 2, 3, 6, 5, 4]  // three rows of two
        let stats = GaussianStatistics(features: rows, dimension: 2)
        #expect(stats.mean == [3, 4])
        // deviations (−2, −2), (0, 2), (2, 0): Σ = [[8, 4], [4, 8]] / 2
        #expect(stats.covariance == [4, 2, 2, 4])
    }

    @Test func clipScoreIsAHundredTimesTheCosineClippedAtZero() {
        let images: [Float] = [1, 0, 0, 1]
        let texts: [Float] = [0.6, 0.8, 0, -1]
        let scores = Metrics.clipScores(images: images, texts: texts, dimension: 2)
        #expect(abs(scores[0] - 60) < 1e-4)
        #expect(scores[1] == 0)
    }

    /// A toy scorer in two dimensions: caption k points at angle k·step; picture i sits near
    /// its caption's angle plus an offset, so it is recognised exactly when the offset is less
    /// than half a step.
    @Test func rPrecisionCountsPicturesWhoseCaptionRanksFirst() {
        let count = 100, step = 2 * Double.pi / Double(count)
        func point(_ angle: Double) -> [Float] { [Float(cos(angle)), Float(sin(angle))] }
        let captions = (0..<count).flatMap { k in point(Double(k) * step) }
        // Every fourth picture is nearer the next caption than its own.
        let images = (0..<count).flatMap { i in point((Double(i) + (i % 4 == 0 ? 0.8 : 0.2)) * step) }
        let r = Metrics.rPrecision(images: images, truth: Array(0..<count), captions: captions, dimension: 2)
        #expect(r.candidates == 100)
        #expect(abs(r.value - 0.75) < 1e-12)
        // With fewer captions than 100, every other one is a candidate.
        let few = Metrics.rPrecision(images: Array(images.prefix(20)), truth: Array(0..<10),
                                     captions: Array(captions.prefix(20)), dimension: 2)
        #expect(few.candidates == 10)
    }
}
