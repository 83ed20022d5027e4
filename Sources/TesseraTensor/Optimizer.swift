// AdamW over a parameter store, global gradient-norm clipping, and the warm-up + cosine
// learning-rate schedule (Loshchilov & Hutter 2017) that every Tessera trainer uses.
import Foundation
import TesseraKernels

public final class AdamW {
    public let parameters: ParameterStore
    public var hyper: AdamWHyperparameters
    /// Updates applied so far.
    public internal(set) var step = 0
    /// First and second moment estimates, one pair per parameter in store order.
    let firstMoments: [Tensor]
    let secondMoments: [Tensor]

    public init(parameters: ParameterStore, hyper: AdamWHyperparameters) {
        self.parameters = parameters
        self.hyper = hyper
        firstMoments = parameters.entries.map { Tensor(shape: $0.tensor.shape) }
        secondMoments = parameters.entries.map { Tensor(shape: $0.tensor.shape) }
    }

    /// One update with the current gradients. With `maxGradientNorm`, gradients whose global
    /// norm exceeds it are scaled down to it first. Returns the norm before clipping.
    @discardableResult
    public func update(learningRate: Float, maxGradientNorm: Float? = nil) -> Float {
        let norm = parameters.gradientNorm()
        var gradientScale: Float = 1
        if let maxGradientNorm, norm > maxGradientNorm, norm.isFinite { gradientScale = maxGradientNorm / norm }
        step += 1
        for (i, entry) in parameters.entries.enumerated() {
            var h = hyper
            h.learningRate = learningRate
            if !entry.decays { h.weightDecay = 0 }
            adamWUpdate(entry.tensor.data, entry.tensor.grad, firstMoments[i].data, secondMoments[i].data,
                        count: entry.tensor.count, step: step, hyper: h, gradientScale: gradientScale)
        }
        return norm
    }

    /// The moment tensors under checkpoint names.
    var stateTensors: [(name: String, tensor: Tensor)] {
        parameters.entries.indices.flatMap { i in
            [("optimizer.m." + parameters.entries[i].name, firstMoments[i]),
             ("optimizer.v." + parameters.entries[i].name, secondMoments[i])]
        }
    }
}

/// Linear warm-up to `peak`, then a cosine decay to `minimum` at `totalSteps`.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Float
    public var minimum: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, minimum: Float = 0, warmupSteps: Int, totalSteps: Int) {
        self.peak = peak
        self.minimum = minimum
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The rate for update number `step`, counted from 0.
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        if step >= totalSteps { return minimum }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        return minimum + (peak - minimum) * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}
