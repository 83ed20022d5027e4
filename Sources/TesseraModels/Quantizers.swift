// The two quantizers between encoder and decoder. VQ: l2-normalised D-dim codes, nearest code
// by cosine similarity, codebook moved by exponential moving averages of its assigned encoder
// outputs (van den Oord et al. 2017, appendix; Yu et al. 2021 for the normalised lookup), dead
// codes restarted from recent encoder outputs. Gumbel: DALL-E's dVAE relaxation (Ramesh et al.
// 2021), K logits per position, a soft one-hot at a falling temperature, KL to the uniform prior.
// FSQ: finite scalar quantization (Mentzer et al. 2023), each of D channels rounded to a few
// levels; the codebook is every combination of levels, so it has no state and no dead codes.
import Foundation
import TesseraKernels
import TesseraTensor

public struct QuantizerOutput {
    /// The decoder's input (B, D, h, w).
    public var latent: Tensor
    /// Each position's code, row-major over (b, y, x).
    public var codes: [Int32]
    /// The quantizer's own loss term (commitment, or weighted KL), a one-element tensor.
    public var loss: Tensor
}

public protocol Quantizer: AnyObject {
    /// Channels the encoder's head produces for this quantizer.
    var headChannels: Int { get }
    var codebookSize: Int { get }
    /// State that is not a trained parameter but belongs in checkpoints and model files.
    var buffers: [(name: String, tensor: Tensor)] { get }
    /// Quantizes the encoder head (B, headChannels, h, w). In training the quantizer also
    /// updates its own state (EMA codebook, restarts) and may draw from `rng`.
    func quantize(_ tape: Tape, _ head: Tensor, training: Bool, step: Int, totalSteps: Int,
                  rng: inout RandomGenerator) -> QuantizerOutput
    /// The decoder input for given codes: (batch, D, h, w).
    func embed(_ codes: [Int32], batch: Int, height: Int, width: Int) -> Tensor
    /// Every code's vector (K, D), for pictures of the codebook and for diffusion.
    func codeVectors() -> [Float]
}

public final class VectorQuantizer: Quantizer {
    public let codebookSize: Int
    public let codeDimension: Int
    let commitmentWeight: Float
    let decay: Float
    let restartThreshold: Float
    /// (K, D) unit rows.
    public let codebook: Tensor
    /// EMA of the assignments each code gets per batch (K), and of their sum (K, D).
    public let clusterSizes: Tensor
    public let clusterSums: Tensor
    /// 1 once the codebook has been seeded from encoder outputs.
    let seeded: Tensor

    public init(config: AutoencoderConfig, rng: inout RandomGenerator) {
        codebookSize = config.codebookSize
        codeDimension = config.codeDimension
        commitmentWeight = config.commitmentWeight
        decay = config.emaDecay
        restartThreshold = config.restartThreshold
        codebook = Tensor(shape: [codebookSize, codeDimension])  // (K, D)
        rng.fillNormal(codebook.data, count: codebook.count)
        for k in 0..<codebookSize { normalize(codebook.data + k * codeDimension, codeDimension) }
        clusterSizes = Tensor(shape: [codebookSize])  // (K)
        clusterSums = Tensor(shape: [codebookSize, codeDimension])  // (K, D)
        seeded = Tensor(shape: [1])
    }

    public var headChannels: Int { codeDimension }

    public var buffers: [(name: String, tensor: Tensor)] {
        [("quantizer.codebook", codebook), ("quantizer.cluster_sizes", clusterSizes),
         ("quantizer.cluster_sums", clusterSums), ("quantizer.seeded", seeded)]
    }

    public func quantize(_ tape: Tape, _ head: Tensor, training: Bool, step: Int, totalSteps: Int,
                         rng: inout RandomGenerator) -> QuantizerOutput {
        let z = tape.l2NormalizeChannels(head)  // (B, D, h, w)
        let (batch, plane) = (z.shape[0], z.shape[2] * z.shape[3])
        var rows = [Float](repeating: 0, count: z.count)  // (B·h·w, D)
        swapMiddleAxesForward(&rows, z.data, batch, codeDimension, plane, 1)
        if training && seeded.data[0] == 0 { seed(from: rows, rng: &rng) }
        let (quantized, codes, loss) = tape.vectorQuantize(z, codebook: codebook, codebookWeight: 0,
                                                           commitmentWeight: commitmentWeight)
        if training {
            updateAverages(rows, codes)
            restartDeadCodes(rows, rng: &rng)
        }
        return QuantizerOutput(latent: quantized, codes: codes, loss: loss)
    }

    /// Codes start as distinct encoder outputs of the first batch (with replacement when the
    /// batch has fewer positions than codes), so none starts out of reach.
    func seed(from rows: [Float], rng: inout RandomGenerator) {
        let positions = rows.count / codeDimension
        var order = Array(0..<positions)
        rng.shuffle(&order)
        for k in 0..<codebookSize {
            let source = k < positions ? order[k] : rng.int(below: positions)
            setCode(k, to: rows, row: source, jitter: k < positions ? 0 : 0.01, rng: &rng)
        }
        seeded.data[0] = 1
    }

    /// N_k ← γN_k + (1−γ)n_k, M_k ← γM_k + (1−γ)Σ z, e_k = M_k / ‖M_k‖.
    public func updateAverages(_ rows: [Float], _ codes: [Int32]) {
        let d = codeDimension
        var counts = [Float](repeating: 0, count: codebookSize)
        var sums = [Float](repeating: 0, count: codebookSize * d)  // (K, D)
        for (p, code) in codes.enumerated() {
            let k = Int(code)
            counts[k] += 1
            for c in 0..<d { sums[k * d + c] += rows[p * d + c] }
        }
        for k in 0..<codebookSize {
            clusterSizes.data[k] = decay * clusterSizes.data[k] + (1 - decay) * counts[k]
            let sum = clusterSums.data + k * d
            for c in 0..<d { sum[c] = decay * sum[c] + (1 - decay) * sums[k * d + c] }
            if sumOfSquares(sum, d) > 1e-12 {
                (codebook.data + k * d).update(from: sum, count: d)
                normalize(codebook.data + k * d, d)
            }
        }
    }

    /// Codes whose average use fell below the threshold restart at a random encoder output
    /// of this batch, with one assignment's worth of history.
    func restartDeadCodes(_ rows: [Float], rng: inout RandomGenerator) {
        let positions = rows.count / codeDimension
        for k in 0..<codebookSize where clusterSizes.data[k] < restartThreshold {
            setCode(k, to: rows, row: rng.int(below: positions), jitter: 0.01, rng: &rng)
        }
    }

    private func setCode(_ k: Int, to rows: [Float], row: Int, jitter: Float, rng: inout RandomGenerator) {
        let d = codeDimension, code = codebook.data + k * d
        for c in 0..<d { code[c] = rows[row * d + c] + jitter * rng.normal() }
        normalize(code, d)
        clusterSizes.data[k] = 1
        (clusterSums.data + k * d).update(from: code, count: d)
    }

    public func embed(_ codes: [Int32], batch: Int, height: Int, width: Int) -> Tensor {
        embedRows(codes, table: codebook.data, dimension: codeDimension, batch: batch, height: height, width: width)
    }

    public func codeVectors() -> [Float] { codebook.values }
}

public final class GumbelQuantizer: Quantizer {
    public let codebookSize: Int
    public let codeDimension: Int
    let klWeight: Float
    let temperatureStart: Float
    let temperatureEnd: Float
    /// (K, D), a trained parameter.
    public let embedding: Tensor

    public init(config: AutoencoderConfig, parameters: ParameterStore, rng: inout RandomGenerator) {
        codebookSize = config.codebookSize
        codeDimension = config.codeDimension
        klWeight = config.klWeight
        temperatureStart = config.temperatureStart
        temperatureEnd = config.temperatureEnd
        embedding = parameters.add("quantizer.embedding", shape: [codebookSize, codeDimension],
                                   .normal(std: 1), decays: false, rng: &rng)
    }

    public var headChannels: Int { codebookSize }
    public var buffers: [(name: String, tensor: Tensor)] { [] }

    /// Exponential annealing from the start temperature to the end one over the first 80 % of
    /// training (DALL-E anneals 1 → 1/16).
    public func temperature(step: Int, totalSteps: Int) -> Float {
        let progress = min(1, Float(step) / Float(max(1, totalSteps * 4 / 5)))
        return temperatureStart * pow(temperatureEnd / temperatureStart, progress)
    }

    public func quantize(_ tape: Tape, _ head: Tensor, training: Bool, step: Int, totalSteps: Int,
                         rng: inout RandomGenerator) -> QuantizerOutput {
        let (batch, height, width) = (head.shape[0], head.shape[2], head.shape[3])
        let positions = batch * height * width
        let logits = tape.reshape(tape.channelsLast(head), [positions, codebookSize])  // (B·h·w, K)
        let codes = argmaxRows(logits.data, rows: positions, columns: codebookSize)
        let loss = tape.scale(tape.klToUniform(logits), by: klWeight)
        guard training else {
            return QuantizerOutput(latent: embed(codes, batch: batch, height: height, width: width), codes: codes, loss: loss)
        }
        let noise = Tensor(shape: [positions, codebookSize])  // (B·h·w, K) Gumbel(0, 1)
        for i in 0..<noise.count { noise.data[i] = -log(-log(max(rng.uniform(), 1e-20)) + 1e-20) }
        let tau = temperature(step: step, totalSteps: totalSteps)
        let soft = tape.softmax(tape.scale(tape.add(logits, noise), by: 1 / tau))  // (B·h·w, K)
        let rows = tape.matmul(soft, embedding)  // (B·h·w, D)
        let latent = tape.channelsFirst(tape.reshape(rows, [batch, height, width, codeDimension]))  // (B, D, h, w)
        return QuantizerOutput(latent: latent, codes: codes, loss: loss)
    }

    public func embed(_ codes: [Int32], batch: Int, height: Int, width: Int) -> Tensor {
        embedRows(codes, table: embedding.data, dimension: codeDimension, batch: batch, height: height, width: width)
    }

    public func codeVectors() -> [Float] { embedding.values }
}

public final class FiniteScalarQuantizer: Quantizer {
    /// Levels per channel; a code is the channels' levels in mixed radix, the first most significant.
    public let levels: [Int]
    public let codebookSize: Int

    public init(config: AutoencoderConfig) {
        levels = config.levels ?? []
        codebookSize = config.codebookSize
        precondition(!levels.isEmpty && levels.reduce(1, *) == codebookSize, "FSQ: levels \(levels) for \(codebookSize) codes")
    }

    public var headChannels: Int { levels.count }
    public var buffers: [(name: String, tensor: Tensor)] { [] }

    public func quantize(_ tape: Tape, _ head: Tensor, training: Bool, step: Int, totalSteps: Int,
                         rng: inout RandomGenerator) -> QuantizerOutput {
        let (latent, chosen) = tape.finiteScalarQuantize(head, levels: levels)
        let d = levels.count
        let codes = (0..<(chosen.count / d)).map { p in
            (0..<d).reduce(Int32(0)) { code, c in code * Int32(levels[c]) + chosen[p * d + c] }
        }
        return QuantizerOutput(latent: latent, codes: codes, loss: Tensor(shape: [1]))
    }

    public func embed(_ codes: [Int32], batch: Int, height: Int, width: Int) -> Tensor {
        codeVectors().withUnsafeBufferPointer { table in
            embedRows(codes, table: table.baseAddress!, dimension: levels.count, batch: batch, height: height, width: width)
        }
    }

    /// Code k's latent (K, D): its level in each channel spread over [−1, 1].
    public func codeVectors() -> [Float] {
        let d = levels.count
        var table = [Float](repeating: 0, count: codebookSize * d)
        for k in 0..<codebookSize {
            var rest = k
            for c in (0..<d).reversed() {
                table[k * d + c] = Float(rest % levels[c]) * 2 / Float(levels[c] - 1) - 1
                rest /= levels[c]
            }
        }
        return table
    }
}

/// Rows of `table` (K, D) picked by codes (B·h·w) laid out as a decoder input (B, D, h, w).
func embedRows(_ codes: [Int32], table: UnsafePointer<Float>, dimension: Int, batch: Int, height: Int, width: Int) -> Tensor {
    precondition(codes.count == batch * height * width, "embed: \(codes.count) codes for (\(batch), \(height), \(width))")
    var rows = [Float](repeating: 0, count: codes.count * dimension)  // (B·h·w, D)
    for (p, code) in codes.enumerated() {
        for c in 0..<dimension { rows[p * dimension + c] = table[Int(code) * dimension + c] }
    }
    let latent = Tensor(shape: [batch, dimension, height, width])  // (B, D, h, w)
    swapMiddleAxesForward(latent.data, rows, batch, height * width, dimension, 1)
    return latent
}

func argmaxRows(_ x: UnsafePointer<Float>, rows: Int, columns: Int) -> [Int32] {
    (0..<rows).map { r in
        var best = 0
        for c in 1..<columns where x[r * columns + c] > x[r * columns + best] { best = c }
        return Int32(best)
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
func normalize(_ v: UnsafeMutablePointer<Float>, _ count: Int) {
    let norm = sumOfSquares(v, count).squareRoot()
    if norm > 0 { for i in 0..<count { v[i] /= norm } }
}
