// Training end to end on tiny models: the learning-rate schedule, clipping, decoupled weight
// decay, overfitting a fixed batch (an MLP and a conv net), and exact resumption from a
// checkpoint.
import Foundation
import Testing
import TesseraKernels
import TesseraTensor

/// A two-layer MLP classifier: linear → GELU → layer norm → linear.
struct TinyMLP {
    let parameters = ParameterStore()
    let w1, b1, lnWeight, lnBias, w2, b2: Tensor

    init(inputs: Int, hidden: Int, classes: Int, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        w1 = parameters.add("fc1.weight", shape: [hidden, inputs], .normal(std: 0.3), decays: true, rng: &rng)
        b1 = parameters.add("fc1.bias", shape: [hidden], .zeros, decays: false, rng: &rng)
        lnWeight = parameters.add("ln.weight", shape: [hidden], .ones, decays: false, rng: &rng)
        lnBias = parameters.add("ln.bias", shape: [hidden], .zeros, decays: false, rng: &rng)
        w2 = parameters.add("fc2.weight", shape: [classes, hidden], .normal(std: 0.3), decays: true, rng: &rng)
        b2 = parameters.add("fc2.bias", shape: [classes], .zeros, decays: false, rng: &rng)
    }

    func loss(_ tape: Tape, _ x: Tensor, _ targets: [Int32]) -> Tensor {
        let h = tape.layerNorm(tape.gelu(tape.linear(x, weight: w1, bias: b1)), weight: lnWeight, bias: lnBias)
        return tape.crossEntropy(tape.linear(h, weight: w2, bias: b2), targets: targets)
    }
}

/// Runs `steps` AdamW updates on a fixed batch; returns the last loss.
@discardableResult
func train(_ model: TinyMLP, _ optimizer: AdamW, _ x: Tensor, _ targets: [Int32], steps: Int) -> Float {
    var last: Float = .nan
    for _ in 0..<steps {
        model.parameters.zeroGrads()
        let tape = Tape()
        let loss = model.loss(tape, x, targets)
        tape.backward(loss)
        optimizer.update(learningRate: 0.01, maxGradientNorm: 1)
        last = loss.item
    }
    return last
}

func fixedBatch(rows: Int, inputs: Int, classes: Int, seed: UInt64) -> (Tensor, [Int32]) {
    var rng = RandomGenerator(seed: seed)
    let x = Tensor(shape: [rows, inputs])
    rng.fillNormal(x.data, count: x.count)
    return (x, (0..<rows).map { _ in Int32(rng.int(below: classes)) })
}

@Suite struct Training {
    @Test func scheduleWarmsUpThenDecays() {
        let schedule = LearningRateSchedule(peak: 1e-3, minimum: 1e-4, warmupSteps: 10, totalSteps: 110)
        func rate(_ step: Int) -> Double { Double(schedule.rate(at: step)) }
        #expect(abs(rate(0) - 1e-4) < 1e-10)  // 1/10 of the peak on the first step
        #expect(abs(rate(9) - 1e-3) < 1e-10)
        #expect(abs(rate(60) - 5.5e-4) < 1e-10)  // half way down the cosine
        #expect(rate(110) == Double(Float(1e-4)) && rate(500) == Double(Float(1e-4)))
    }

    @Test func weightDecayIsDecoupledAndSkipsNonDecayingParameters() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 1)
        let w = store.add("w", shape: [4], .ones, decays: true, rng: &rng)
        let b = store.add("b", shape: [4], .ones, decays: false, rng: &rng)
        let optimizer = AdamW(parameters: store, hyper: AdamWHyperparameters(learningRate: 0.1, weightDecay: 0.5))
        _ = (w.grad, b.grad)  // zero gradients: only the decay moves anything
        optimizer.update(learningRate: 0.1)
        #expect(w.values == [Float](repeating: 0.95, count: 4))
        #expect(b.values == [Float](repeating: 1, count: 4))
    }

    @Test func clippingScalesTheGlobalNorm() {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: 1)
        let w = store.add("w", shape: [2], .zeros, decays: false, rng: &rng)
        w.grad[0] = 3
        w.grad[1] = 4
        #expect(store.gradientNorm() == 5)
        let optimizer = AdamW(parameters: store, hyper: AdamWHyperparameters(learningRate: 1, beta1: 0, beta2: 0, epsilon: 0, weightDecay: 0))
        #expect(optimizer.update(learningRate: 1, maxGradientNorm: 1) == 5)
        // With β = 0 and ε = 0 Adam's step is sign(g)·lr whatever the scale.
        #expect(w.values == [-1, -1])
    }

    @Test func mlpOverfitsAFixedBatch() {
        let (x, targets) = fixedBatch(rows: 32, inputs: 10, classes: 5, seed: 2)
        let model = TinyMLP(inputs: 10, hidden: 32, classes: 5, seed: 3)
        let optimizer = AdamW(parameters: model.parameters, hyper: AdamWHyperparameters(learningRate: 0.01, weightDecay: 0))
        let first = train(model, optimizer, x, targets, steps: 1)
        let last = train(model, optimizer, x, targets, steps: 299)
        #expect(first > 1.2)  // about ln 5 at the start
        #expect(last < 0.02, "loss after 300 steps: \(last)")
    }

    @Test func convNetOverfitsAFixedBatch() {
        // An autoencoder-shaped net: conv ↓2 → group norm → SiLU → conv (1×1) → ReLU →
        // transposed conv ↑2 → upsample ×2 → conv ↓2, regressing 4 fixed 8×8 RGB images.
        var rng = RandomGenerator(seed: 4)
        let store = ParameterStore()
        let c1 = store.add("c1.weight", shape: [8, 3, 4, 4], .normal(std: 0.2), decays: true, rng: &rng)
        let c1b = store.add("c1.bias", shape: [8], .zeros, decays: false, rng: &rng)
        let gnW = store.add("gn.weight", shape: [8], .ones, decays: false, rng: &rng)
        let gnB = store.add("gn.bias", shape: [8], .zeros, decays: false, rng: &rng)
        let c2 = store.add("c2.weight", shape: [8, 8, 1, 1], .normal(std: 0.3), decays: true, rng: &rng)
        let t1 = store.add("t1.weight", shape: [8, 8, 4, 4], .normal(std: 0.2), decays: true, rng: &rng)
        let t1b = store.add("t1.bias", shape: [8], .zeros, decays: false, rng: &rng)
        let c3 = store.add("c3.weight", shape: [3, 8, 4, 4], .normal(std: 0.2), decays: true, rng: &rng)
        let c3b = store.add("c3.bias", shape: [3], .zeros, decays: false, rng: &rng)
        let images = Tensor(shape: [4, 3, 8, 8])
        rng.fillUniform(images.data, count: images.count, low: -1, high: 1)
        let optimizer = AdamW(parameters: store, hyper: AdamWHyperparameters(learningRate: 0.01, weightDecay: 0))
        var losses: [Float] = []
        for _ in 0..<400 {
            store.zeroGrads()
            let t = Tape()
            var h = t.conv2d(images, weight: c1, bias: c1b, stride: 2, padding: 1)       // (4, 8, 4, 4)
            h = t.silu(t.groupNorm(h, groups: 2, weight: gnW, bias: gnB))
            h = t.relu(t.conv2d(h, weight: c2))                                            // (4, 8, 4, 4)
            h = t.convTranspose2d(h, weight: t1, bias: t1b, stride: 2, padding: 1)         // (4, 8, 8, 8)
            h = t.upsampleNearest(h, factor: 2)                                            // (4, 8, 16, 16)
            let y = t.conv2d(h, weight: c3, bias: c3b, stride: 2, padding: 1)              // (4, 3, 8, 8)
            let difference = t.sub(y, images)
            let loss = t.mean(t.mul(difference, difference))
            t.backward(loss)
            optimizer.update(learningRate: 0.01, maxGradientNorm: 5)
            losses.append(loss.item)
        }
        #expect(losses[0] > 0.2)  // the images have variance 1/3
        #expect(!images.hasGrad)  // no gradient is made for an input that needs none
        #expect(losses.last! < 0.01, "MSE after 400 steps: \(losses.last!)")
    }

    @Test func checkpointResumesExactly() throws {
        let (x, targets) = fixedBatch(rows: 16, inputs: 6, classes: 4, seed: 5)
        let straight = TinyMLP(inputs: 6, hidden: 16, classes: 4, seed: 6)
        let straightOptimizer = AdamW(parameters: straight.parameters, hyper: AdamWHyperparameters(learningRate: 0.01))
        train(straight, straightOptimizer, x, targets, steps: 10)

        let first = TinyMLP(inputs: 6, hidden: 16, classes: 4, seed: 6)
        let firstOptimizer = AdamW(parameters: first.parameters, hyper: AdamWHyperparameters(learningRate: 0.01))
        train(first, firstOptimizer, x, targets, steps: 4)
        var rng = RandomGenerator(seed: 77)
        _ = rng.next()
        let path = temporaryPath("resume.safetensors")
        defer { removeTemporaryPath(path) }
        try Checkpoint.save(to: path, optimizer: firstOptimizer, state: TrainingState(step: 4, rng: rng, metadata: ["run": "test"]))

        // A fresh model with other initial values, restored from the file, then 6 more steps.
        let resumed = TinyMLP(inputs: 6, hidden: 16, classes: 4, seed: 99)
        let resumedOptimizer = AdamW(parameters: resumed.parameters, hyper: AdamWHyperparameters(learningRate: 0.01))
        let state = try Checkpoint.load(from: path, into: resumedOptimizer)
        #expect(state == TrainingState(step: 4, rng: rng, metadata: ["run": "test"]))
        #expect(resumedOptimizer.step == 4)
        train(resumed, resumedOptimizer, x, targets, steps: 6)
        for (a, b) in zip(straight.parameters.entries, resumed.parameters.entries) {
            #expect(a.tensor.values == b.tensor.values, "\(a.name) differs after resuming")
        }
    }

    @Test func truncatedCheckpointIsRejectedAndChangesNothing() throws {
        let model = TinyMLP(inputs: 3, hidden: 4, classes: 2, seed: 8)
        let optimizer = AdamW(parameters: model.parameters, hyper: AdamWHyperparameters(learningRate: 0.01))
        let path = temporaryPath("truncated.safetensors")
        defer { removeTemporaryPath(path) }
        try Checkpoint.save(to: path, optimizer: optimizer, state: TrainingState(step: 1, rng: RandomGenerator(seed: 1)))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: path))

        let other = TinyMLP(inputs: 3, hidden: 4, classes: 2, seed: 9)
        let before = other.parameters.entries.map(\.tensor.values)
        let otherOptimizer = AdamW(parameters: other.parameters, hyper: AdamWHyperparameters(learningRate: 0.01))
        #expect(throws: TesseraError.self) { try Checkpoint.load(from: path, into: otherOptimizer) }
        #expect(other.parameters.entries.map(\.tensor.values) == before)
        // A checkpoint for another architecture names the tensor that does not fit.
        let wider = TinyMLP(inputs: 3, hidden: 5, classes: 2, seed: 9)
        try Checkpoint.save(to: path, optimizer: optimizer, state: TrainingState(step: 1, rng: RandomGenerator(seed: 1)))
        do {
            _ = try Checkpoint.load(from: path, into: AdamW(parameters: wider.parameters, hyper: .init(learningRate: 0.01)))
            Issue.record("a checkpoint of the wrong shape loaded")
        } catch let error as TesseraError {
            #expect(error.problem == "tensor fc1.weight has shape [4, 3], expected [5, 3]")
        }
    }
}
