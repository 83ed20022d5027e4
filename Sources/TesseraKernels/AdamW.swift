// The AdamW update (Loshchilov & Hutter 2019): Adam's moment estimates with bias correction,
// and weight decay applied to the parameter directly rather than through the gradient.
import Foundation

public struct AdamWHyperparameters: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.1

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.95,
                epsilon: Float = 1e-8, weightDecay: Float = 0.1) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// One AdamW step over `count` parameters. `step` counts from 1 (bias correction);
/// `gradientScale` multiplies every gradient first (gradient clipping passes it).
public func adamWUpdate(
    _ params: UnsafeMutablePointer<Float>,
    _ grads: UnsafePointer<Float>,
    _ firstMoment: UnsafeMutablePointer<Float>,
    _ secondMoment: UnsafeMutablePointer<Float>,
    count: Int, step: Int, hyper h: AdamWHyperparameters, gradientScale: Float = 1
) {
    precondition(step >= 1, "adamW: step counts from 1, got \(step)")
    let correction1 = 1 - Float(pow(Double(h.beta1), Double(step)))
    let correction2 = 1 - Float(pow(Double(h.beta2), Double(step)))
    let lr = h.learningRate, decay = 1 - h.learningRate * h.weightDecay
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        for i in range {
            let g = grads[i] * gradientScale
            let m = h.beta1 * firstMoment[i] + (1 - h.beta1) * g
            let v = h.beta2 * secondMoment[i] + (1 - h.beta2) * g * g
            firstMoment[i] = m
            secondMoment[i] = v
            let update = (m / correction1) / ((v / correction2).squareRoot() + h.epsilon)
            params[i] = params[i] * decay - lr * update
        }
    }
}
