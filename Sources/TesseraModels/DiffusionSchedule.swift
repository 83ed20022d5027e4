// Gaussian diffusion on a latent: the cosine noise schedule (Nichol & Dhariwal 2021), the
// forward process, v-prediction (Salimans & Ho 2022) and the DDIM update (Song et al. 2021),
// whose η = 1 is DDPM's ancestral sampler. Timesteps are whole numbers 0…T; t = 0 is clean.
//
// Why v: its target has unit scale at every t, and the clean latent it implies,
// x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v, stays well-conditioned where ᾱ → 0. With ε-prediction,
// x̂₀ = (x_t − √(1−ᾱ)·ε̂)/√ᾱ divides by √ᾱ and blows up at high noise, which few-step DDIM and
// the progress strip of x̂₀ predictions both show.
import Foundation
import TesseraTensor

public struct CosineSchedule: Sendable {
    /// T, the number of noise levels above clean.
    public let steps: Int
    /// ᾱ_t for t = 0…T (ᾱ_0 = 1).
    public let alphaBars: [Double]

    /// s = 0.008 keeps β small near t = 0; each β_t is clipped to 0.999 so ᾱ_T > 0.
    public init(steps: Int = 1000, offset: Double = 0.008) {
        precondition(steps >= 1, "CosineSchedule: \(steps) steps")
        self.steps = steps
        func f(_ t: Int) -> Double {
            let angle = (Double(t) / Double(steps) + offset) / (1 + offset) * Double.pi / 2
            return cos(angle) * cos(angle)
        }
        var alphaBars = [1.0]
        for t in 1...steps {
            let beta = min(1 - f(t) / f(t - 1), 0.999)
            alphaBars.append(alphaBars[t - 1] * (1 - beta))
        }
        self.alphaBars = alphaBars
    }

    /// (√ᾱ_t, √(1−ᾱ_t)).
    public func coefficients(_ t: Int) -> (signal: Float, noise: Float) {
        (Float(alphaBars[t].squareRoot()), Float((1 - alphaBars[t]).squareRoot()))
    }

    /// x_t = √ᾱ·x₀ + √(1−ᾱ)·ε.
    public func noised(_ clean: [Float], noise: [Float], at t: Int) -> [Float] {
        let (a, s) = coefficients(t)
        return zip(clean, noise).map { a * $0 + s * $1 }
    }

    /// The training target v = √ᾱ·ε − √(1−ᾱ)·x₀.
    public func velocity(clean: [Float], noise: [Float], at t: Int) -> [Float] {
        let (a, s) = coefficients(t)
        return zip(clean, noise).map { a * $1 - s * $0 }
    }

    /// x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v.
    public func clean(noisy: [Float], velocity: [Float], at t: Int) -> [Float] {
        let (a, s) = coefficients(t)
        return zip(noisy, velocity).map { a * $0 - s * $1 }
    }

    /// The v that implies clean latents x₀ at x_t: (√ᾱ·x_t − x₀)/√(1−ᾱ) (t ≥ 1).
    public func velocity(noisy: [Float], clean: [Float], at t: Int) -> [Float] {
        let (a, s) = coefficients(t)
        return zip(noisy, clean).map { (a * $0 - $1) / s }
    }

    /// ε̂ = √(1−ᾱ)·x_t + √ᾱ·v.
    public func noise(noisy: [Float], velocity: [Float], at t: Int) -> [Float] {
        let (a, s) = coefficients(t)
        return zip(noisy, velocity).map { s * $0 + a * $1 }
    }

    /// `count` timesteps from T down to 1, evenly spaced (the DDIM sub-sequence); sampling
    /// steps from each to the next and from the last to 0.
    public func samplingTimesteps(_ count: Int) -> [Int] {
        let count = max(1, min(count, steps))
        var result: [Int] = []
        for i in 0..<count {
            let t = Int((Double(steps) * Double(count - i) / Double(count)).rounded())
            if result.last != t { result.append(max(1, t)) }
        }
        return result
    }

    /// One DDIM step from x_t to x_s (s < t) given the model's v:
    /// x_s = √ᾱ_s·x̂₀ + √(1−ᾱ_s−σ²)·ε̂ + σ·z, σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_s).
    /// η = 0 is deterministic DDIM; η = 1 is DDPM's ancestral step.
    public func step(noisy: [Float], velocity: [Float], from t: Int, to s: Int, eta: Float,
                     rng: inout RandomGenerator) -> [Float] {
        precondition(s < t, "CosineSchedule.step: from \(t) to \(s)")
        let x0 = clean(noisy: noisy, velocity: velocity, at: t), epsilon = noise(noisy: noisy, velocity: velocity, at: t)
        let (at, as_) = (alphaBars[t], alphaBars[s])
        let sigma = Double(eta) * ((1 - as_) / (1 - at)).squareRoot() * max(0, 1 - at / as_).squareRoot()
        let (signal, direction) = (Float(as_.squareRoot()), Float(max(0, 1 - as_ - sigma * sigma).squareRoot()))
        var result = zip(x0, epsilon).map { signal * $0 + direction * $1 }
        if sigma > 0 {
            for i in result.indices { result[i] += Float(sigma) * rng.normal() }
        }
        return result
    }
}
