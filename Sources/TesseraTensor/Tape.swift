// Reverse-mode automatic differentiation over coarse ops. Each op computes its forward with a
// kernel and, when an input needs a gradient, records one backward step that calls the
// matching backward kernel. `backward` replays the steps in reverse; every step adds into
// its inputs' gradients, so fan-out needs no bookkeeping.

public final class Tape {
    private var steps: [() -> Void] = []

    public init() {}

    /// Backward steps recorded so far.
    public var recordedSteps: Int { steps.count }

    /// A zero-filled output for an op whose inputs are `inputs`: it needs a gradient when any
    /// input does.
    func output(_ shape: [Int], _ inputs: Tensor?...) -> Tensor {
        Tensor(shape: shape, requiresGrad: inputs.contains { $0?.requiresGrad ?? false })
    }

    /// An output that is not zero-filled, for an op whose kernel writes every element.
    func unfilledOutput(_ shape: [Int], _ inputs: Tensor?...) -> Tensor {
        Tensor(unfilledShape: shape, requiresGrad: inputs.contains { $0?.requiresGrad ?? false })
    }

    /// Records a backward step when `output` needs a gradient.
    func record(_ output: Tensor, _ step: @escaping () -> Void) {
        if output.requiresGrad { steps.append(step) }
    }

    /// Back-propagates from a one-element loss, seeding its gradient with 1, then clears the
    /// tape. Gradients accumulate into what the tensors already hold.
    public func backward(_ loss: Tensor) {
        precondition(loss.count == 1, "backward: loss of shape \(loss.shape) is not a scalar")
        backward(loss, seed: [1])
    }

    /// Back-propagates from `output` with the upstream gradient `seed` (same element count),
    /// which is the gradient of Σ output ⊙ seed. Clears the tape.
    public func backward(_ output: Tensor, seed: [Float]) {
        precondition(seed.count == output.count, "backward: seed of \(seed.count) for \(output.shape)")
        let grad = output.grad
        for i in 0..<seed.count { grad[i] += seed[i] }
        for step in steps.reversed() { step() }
        steps.removeAll()
    }

    /// Forgets the recorded steps without running them (inference, or an abandoned step).
    public func reset() { steps.removeAll() }
}
