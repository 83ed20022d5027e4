// Sampling the diffusion prior: start from Gaussian noise and take DDIM steps (η = 0:
// deterministic DDIM; η = 1: DDPM's ancestral sampler) down the cosine schedule, with
// classifier-free guidance (Ho & Salimans 2022) running the conditional and unconditional rows
// as one batch. Known positions (completion) are replaced at every step by the given latent
// noised to that step's level (RePaint, Lugmayr et al. 2022, without its resampling). The
// final latent is snapped to the nearest codes, a token grid like the AR prior's. A
// self-conditioned prior sees its previous step's prediction of the clean latent.
import Foundation
import TesseraTensor

public struct DiffusionSamplingOptions: Codable, Equatable, Sendable {
    /// Denoising steps, evenly spaced over the T noise levels.
    public var steps: Int = 25
    /// 0: deterministic DDIM; 1: DDPM's ancestral noise.
    public var eta: Float = 0
    /// Classifier-free guidance scale; 1 is plain conditional sampling.
    public var guidance: Float = 1
    /// For a prior with a token head: each step's clean latent is the code vectors weighted by
    /// the head's probabilities (CDCD's score interpolation, Dieleman et al. 2022), not v's.
    public var tokenHead: Bool = false

    public init(steps: Int = 25, eta: Float = 0, guidance: Float = 1, tokenHead: Bool = false) {
        self.steps = steps
        self.eta = eta
        self.guidance = guidance
        self.tokenHead = tokenHead
    }
}

extension DiffusionPrior {
    /// Clean normalised latents (B·h·w·D, channels last) for `text` (B rows of Ttext tokens
    /// from `textTokens`). `keep` gives normalised latents and, per position, whether it is
    /// known. `onStep` hears each step's index and prediction of the clean latent. With
    /// `options.tokenHead`, `codeVectors` are the autoencoder's (K·D, not normalised) and the
    /// prior must have a token head.
    public func sample(text: [Int32], options: DiffusionSamplingOptions, rng: inout RandomGenerator,
                       keep: (latent: [Float], known: [Bool])? = nil, codeVectors: [Float]? = nil,
                       onStep: ((_ step: Int, _ predictedClean: [Float]) -> Void)? = nil) -> [Float] {
        let (t, n, d) = (config.textLength, config.imageLength, config.latentChannels)
        let batch = text.count / t
        precondition(text.count == batch * t && batch > 0, "sample: \(text.count) text tokens for Ttext \(t)")
        precondition(keep == nil || (keep!.latent.count == batch * n * d && keep!.known.count == batch * n),
                     "sample: keep needs \(batch * n * d) latent values and \(batch * n) flags")
        precondition(!options.tokenHead || (tokenOutput != nil && codeVectors?.count == config.codebookSize * d),
                     "sample: the token head needs a prior trained with one and the K·D code vectors")
        let codes = options.tokenHead ? normalize(codeVectors!) : []  // (K, D)
        let guided = options.guidance != 1
        let rows = guided ? 2 * batch : batch  // conditional rows, then unconditional ones
        let conditioning = guided ? text + [Int32]((0..<batch).flatMap { _ in emptyText }) : text
        var x = [Float](repeating: 0, count: batch * n * d)
        x.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, count: $0.count) }
        let timesteps = schedule.samplingTimesteps(options.steps)
        // A self-conditioned prior's previous clean-latent predictions, row by row (sequence
        // layout): each guidance row sees its own, as in training.
        var estimate: [Float]?
        for (i, step) in timesteps.enumerated() {
            let next = i + 1 < timesteps.count ? timesteps[i + 1] : 0
            if let keep { x = replaceKnown(x, with: keep, at: step, rng: &rng) }
            let tape = Tape()
            let input = patchify(guided ? x + x : x)
            let sequence = Tensor(shape: [rows, config.patchRows * config.patchColumns, config.patchValues], values: input)
            let states = finalStates(tape, noisy: sequence, estimate: estimate, timesteps: [Int](repeating: step, count: rows),
                                     text: conditioning)
            var predicted = output(tape, states).values
            if options.tokenHead {
                let clean = expectedCodes(logits: tokenOutput!(tape, states).values, codes: codes)  // sequence layout
                predicted = schedule.velocity(noisy: input, clean: clean, at: step)
            }
            tape.reset()
            if config.selfCondition { estimate = schedule.clean(noisy: input, velocity: predicted, at: step) }
            var v = unpatchify(predicted)  // (rows, h·w, D)
            if guided {
                let half = batch * n * d
                v = (0..<half).map { v[half + $0] + options.guidance * (v[$0] - v[half + $0]) }
            }
            onStep?(i, schedule.clean(noisy: x, velocity: v, at: step))
            x = schedule.step(noisy: x, velocity: v, from: step, to: next, eta: options.eta, rng: &rng)
        }
        if let keep { x = replaceKnown(x, with: keep, at: 0, rng: &rng) }
        return x
    }

    /// Per cell, Σₖ softmax(logits)ₖ · codeₖ: logits (…, K) per cell, codes (K, D) → (…, D).
    func expectedCodes(logits: [Float], codes: [Float]) -> [Float] {
        let (k, d) = (config.codebookSize, config.latentChannels)
        let cells = logits.count / k
        var result = [Float](repeating: 0, count: cells * d)
        var p = [Float](repeating: 0, count: k)
        for cell in 0..<cells {
            let row = logits[cell * k..<(cell + 1) * k]
            let top = row.max()!
            var total: Float = 0
            for (j, l) in row.enumerated() { p[j] = Foundation.exp(l - top); total += p[j] }
            for j in 0..<k where p[j] > 1e-6 * total {
                let w = p[j] / total
                for c in 0..<d { result[cell * d + c] += w * codes[j * d + c] }
            }
        }
        return result
    }

    /// x with its known positions set to the given latent noised to level `t` (t = 0: clean).
    func replaceKnown(_ x: [Float], with keep: (latent: [Float], known: [Bool]), at t: Int,
                      rng: inout RandomGenerator) -> [Float] {
        let d = config.latentChannels
        let (signal, noise) = schedule.coefficients(t)
        var result = x
        for (position, known) in keep.known.enumerated() where known {
            for c in 0..<d {
                let i = position * d + c
                result[i] = signal * keep.latent[i] + (t > 0 ? noise * rng.normal() : 0)
            }
        }
        return result
    }
}

/// For each position of `latents` (positions·D, channels last, the codes' own scale), the code
/// whose vector is nearest in Euclidean distance. For the VQ's unit-length codes this is the
/// code of highest cosine similarity, the same choice its encoder lookup makes.
public func snapToCodes(_ latents: [Float], codeVectors: [Float], dimension: Int) -> [Int32] {
    let (positions, codes) = (latents.count / dimension, codeVectors.count / dimension)
    return latents.withUnsafeBufferPointer { x in
        codeVectors.withUnsafeBufferPointer { e in
            nearestCodes(x.baseAddress!, e.baseAddress!, positions: positions, codes: codes, channels: dimension)
        }
    }
}
