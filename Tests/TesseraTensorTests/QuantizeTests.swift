// The vector-quantization op: nearest codes against a brute-force search, the quantized latent's
// layout, the straight-through gradient, and where the codebook and commitment losses send
// their gradients.
import Testing
import TesseraTensor

@Suite struct VectorQuantization {
    /// z (B, C, h, w) and codebook (K, C) with a fixed seed.
    func inputs(batch: Int = 2, channels: Int = 3, side: Int = 3, codes: Int = 7) -> ([Float], [Float]) {
        var rng = RandomGenerator(seed: 5)
        return ((0..<(batch * channels * side * side)).map { _ in rng.normal() }, (0..<(codes * channels)).map { _ in rng.normal() })
    }

    func bruteForceNearest(_ z: [Float], _ codebook: [Float], batch: Int, channels: Int, plane: Int, codes: Int) -> [Int32] {
        var result = [Int32]()
        for b in 0..<batch {
            for p in 0..<plane {
                let distances = (0..<codes).map { k in
                    (0..<channels).reduce(0.0) { total, c in
                        let d = Double(z[(b * channels + c) * plane + p]) - Double(codebook[k * channels + c])
                        return total + d * d
                    }
                }
                result.append(Int32(distances.indices.min { distances[$0] < distances[$1] }!))
            }
        }
        return result
    }

    @Test func picksTheNearestCodeAndGathersIt() {
        let (zValues, codeValues) = inputs(batch: 3, channels: 5, side: 4, codes: 300)
        let z = Tensor(shape: [3, 5, 4, 4], values: zValues, requiresGrad: false)
        let codebook = Tensor(shape: [300, 5], values: codeValues, requiresGrad: false)
        let (quantized, codes, _) = Tape().vectorQuantize(z, codebook: codebook)
        #expect(codes == bruteForceNearest(zValues, codeValues, batch: 3, channels: 5, plane: 16, codes: 300))
        for b in 0..<3 {
            for p in 0..<16 {
                for c in 0..<5 {
                    #expect(quantized.values[(b * 5 + c) * 16 + p] == codeValues[Int(codes[b * 16 + p]) * 5 + c])
                }
            }
        }
    }

    @Test func gradientPassesStraightThrough() {
        let (zValues, codeValues) = inputs()
        let z = Tensor(shape: [2, 3, 3, 3], values: zValues, requiresGrad: true)
        let codebook = Tensor(shape: [7, 3], values: codeValues, requiresGrad: true)
        let tape = Tape()
        let (quantized, _, _) = tape.vectorQuantize(z, codebook: codebook)
        let seed = (0..<quantized.count).map { Float($0) * 0.5 - 3 }
        tape.backward(quantized, seed: seed)
        #expect(z.gradValues == seed)
        #expect(codebook.gradValues.allSatisfy { $0 == 0 })
    }

    @Test func lossGradientsStopWhereTheyShould() {
        // codebook loss w·mean((e − sg z)²) reaches only the codebook; commitment
        // β·mean((z − sg e)²) only z: dz = 2β(z − e)/N, de_k = 2w Σ_{p → k} (e_k − z_p)/N.
        let (zValues, codeValues) = inputs()
        let z = Tensor(shape: [2, 3, 3, 3], values: zValues, requiresGrad: true)
        let codebook = Tensor(shape: [7, 3], values: codeValues, requiresGrad: true)
        let tape = Tape()
        let (_, codes, loss) = tape.vectorQuantize(z, codebook: codebook, codebookWeight: 0.7, commitmentWeight: 0.25)
        tape.backward(loss)
        let n = Double(zValues.count)
        var expectedLoss = 0.0, dz = [Double](repeating: 0, count: zValues.count), de = [Double](repeating: 0, count: codeValues.count)
        for b in 0..<2 {
            for p in 0..<9 {
                for c in 0..<3 {
                    let zi = (b * 3 + c) * 9 + p, ei = Int(codes[b * 9 + p]) * 3 + c
                    let d = Double(codeValues[ei]) - Double(zValues[zi])
                    expectedLoss += 0.95 * d * d / n
                    dz[zi] = -2 * 0.25 * d / n
                    de[ei] += 2 * 0.7 * d / n
                }
            }
        }
        #expect(abs(Double(loss.item) - expectedLoss) <= 1e-6 * max(1, expectedLoss))
        #expect(zip(z.gradValues, dz).allSatisfy { abs(Double($0) - $1) <= 1e-6 })
        #expect(zip(codebook.gradValues, de).allSatisfy { abs(Double($0) - $1) <= 1e-6 })
    }
}
