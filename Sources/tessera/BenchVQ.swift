// BENCH.md case (d), the plain VQ-VAE training step exactly as the PyTorch peer defines it:
// encoder conv(3→64, 4, s2)–ReLU–conv(64→128, 4, s2)–ReLU–conv(128→64, 1) → 16×16×64; 512-code
// nearest-neighbour VQ with straight-through; decoder conv(64→128, 1)–ReLU–convT(128→64, 4, s2)–
// ReLU–convT(64→3, 4, s2); loss MSE + codebook + 0.25·commitment; Adam (lr 2e-4); 64×64, B = 32.
import TesseraKernels
import TesseraTensor

private struct BenchVQVAE {
    let parameters: ParameterStore
    let codebook: Tensor

    /// A model with its own parameters, or (with a mirroring store) a replica of another.
    init(seed: UInt64, parameters: ParameterStore = ParameterStore()) {
        self.parameters = parameters
        var rng = RandomGenerator(seed: seed)
        // (name, out, in, kernel), PyTorch's default uniform bound 1/√fan-in
        let layers: [(String, [Int])] = [
            ("encoder.0", [64, 3, 4, 4]), ("encoder.1", [128, 64, 4, 4]), ("encoder.2", [64, 128, 1, 1]),
            ("decoder.0", [128, 64, 1, 1]), ("decoder.1", [128, 64, 4, 4]), ("decoder.2", [64, 3, 4, 4]),
        ]
        for (name, shape) in layers {
            let transposed = name == "decoder.1" || name == "decoder.2"  // weights (Cin, Cout, K, K)
            let fanIn = shape[1] * shape[2] * shape[3]  // dimension 1, as PyTorch counts it for both kinds
            let bound = 1 / Float(fanIn).squareRoot()
            parameters.add(name + ".weight", shape: shape, .uniform(bound: bound), decays: false, rng: &rng)
            parameters.add(name + ".bias", shape: [transposed ? shape[1] : shape[0]], .uniform(bound: bound), decays: false, rng: &rng)
        }
        codebook = parameters.add("codebook", shape: [512, 64], .normal(std: 0.1), decays: false, rng: &rng)
    }

    private func p(_ name: String) -> Tensor { parameters[name]! }

    /// The training loss of one batch x (B, 3, 64, 64).
    func loss(_ tape: Tape, _ x: Tensor) -> Tensor {
        var h = tape.relu(tape.conv2d(x, weight: p("encoder.0.weight"), bias: p("encoder.0.bias"), stride: 2, padding: 1))
        h = tape.relu(tape.conv2d(h, weight: p("encoder.1.weight"), bias: p("encoder.1.bias"), stride: 2, padding: 1))
        let z = tape.conv2d(h, weight: p("encoder.2.weight"), bias: p("encoder.2.bias"))  // (B, 64, 16, 16)
        let (quantized, _, vqLoss) = tape.vectorQuantize(z, codebook: codebook)
        h = tape.relu(tape.conv2d(quantized, weight: p("decoder.0.weight"), bias: p("decoder.0.bias")))
        h = tape.relu(tape.convTranspose2d(h, weight: p("decoder.1.weight"), bias: p("decoder.1.bias"), stride: 2, padding: 1))
        let reconstruction = tape.convTranspose2d(h, weight: p("decoder.2.weight"), bias: p("decoder.2.bias"),
                                                  stride: 2, padding: 1)  // (B, 3, 64, 64)
        let error = tape.sub(reconstruction, x)
        return tape.add(tape.mean(tape.mul(error, error)), vqLoss)
    }
}

func benchVQTrain(_ report: (Measurement) -> Void) {
    let batch = 32
    let model = BenchVQVAE(seed: 1)
    let optimizer = AdamW(parameters: model.parameters,
                          hyper: AdamWHyperparameters(learningRate: 2e-4, beta1: 0.9, beta2: 0.999, weightDecay: 0))
    let images = Tensor(shape: [batch, 3, 64, 64])  // uniform in [0, 1) like the peer's torch.rand
    var rng = RandomGenerator(seed: 2)
    rng.fillUniform(images.data, count: images.count, low: 0, high: 1)
    // Data-parallel over the cores: each worker takes a share of the batch (DataParallel).
    let workers = [model] + (1..<min(Threads.count, batch)).map { _ in
        BenchVQVAE(seed: 0, parameters: ParameterStore(mirroring: model.parameters))
    }
    let shares = workers.indices.map { w in
        let share = DataParallel.share(w, of: workers.count, batch: batch), size = 3 * 64 * 64
        let part = Tensor(shape: [share.count, 3, 64, 64])
        part.data.update(from: images.data + share.lowerBound * size, count: share.count * size)
        return part
    }
    let ms = medianMilliseconds {
        DataParallel.backward(workers.map(\.parameters), batch: batch) { w, _, tape in workers[w].loss(tape, shares[w]) }
        _ = optimizer.update(learningRate: 2e-4)
    }
    report(Measurement(caseName: "vq-train", variant: "step", milliseconds: ms,
                       figures: [("images_per_s", .number(Double(batch) * 1000 / ms))]))
}
