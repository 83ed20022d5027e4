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
    let (beta1, beta2, rest1, rest2, epsilon) = (h.beta1, h.beta2, 1 - h.beta1, 1 - h.beta2, h.epsilon)
    // Sixteen lanes at a time: written as a plain loop, the square root and the divisions stay
    // scalar (a library call for the root), and AdamW took 8 % of a dit-train step. The lanes
    // do the same operations in the same order as the tail, so every element is bit-identical.
    Threads.parallelFor(count, minimumChunk: elementwiseChunk) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let g = load16(grads + i) * gradientScale
            let m = beta1 * load16(firstMoment + i) + rest1 * g
            let v = beta2 * load16(secondMoment + i) + rest2 * g * g
            store16(m, firstMoment + i)
            store16(v, secondMoment + i)
            let update = (m / correction1) / ((v / correction2).squareRoot() + epsilon)
            store16(load16(params + i) * decay - lr * update, params + i)
            i += 16
        }
        while i < range.upperBound {
            let g = grads[i] * gradientScale
            let m = beta1 * firstMoment[i] + rest1 * g
            let v = beta2 * secondMoment[i] + rest2 * g * g
            firstMoment[i] = m
            secondMoment[i] = v
            let update = (m / correction1) / ((v / correction2).squareRoot() + epsilon)
            params[i] = params[i] * decay - lr * update
            i += 1
        }
    }
}
