// BENCH.md cases (b) and (c): the peer's plain GPT exactly — pre-LN decoder, d = 256, 8 layers,
// 8 heads, MLP 4× with tanh-GELU, learned positions, one vocabulary of 1,536 (1,024 text + 512
// image), untied head without bias — trained one step at T = 288, B = 8 with AdamW, and
// sampled: a 32-token prefix, then 256 image tokens drawn from the 512 image ids over a KV cache.
import Foundation
import TesseraAttention
import TesseraKernels
import TesseraModels
import TesseraTensor

private struct BenchGPT {
    static let (width, layers, heads, vocabulary, length) = (256, 8, 8, 1536, 288)
    let parameters: ParameterStore
    let tokenEmbedding: Tensor  // (V, C)
    let positionEmbedding: Tensor  // (T, C)
    let blocks: [TransformerBlock]
    let finalNorm: LayerNorm
    let head: Tensor  // (V, C), no bias

    /// A model with its own parameters, or (with a mirroring store) a replica of another.
    init(seed: UInt64, parameters: ParameterStore = ParameterStore()) {
        self.parameters = parameters
        var rng = RandomGenerator(seed: seed)
        let c = BenchGPT.width
        tokenEmbedding = parameters.add("token_embedding", shape: [BenchGPT.vocabulary, c], .normal(std: 0.02), decays: false, rng: &rng)
        positionEmbedding = parameters.add("position_embedding", shape: [BenchGPT.length, c], .normal(std: 0.02), decays: false, rng: &rng)
        var blocks: [TransformerBlock] = []
        for i in 0..<BenchGPT.layers {
            blocks.append(TransformerBlock(parameters, "block\(i)", width: c, numHeads: BenchGPT.heads, layers: BenchGPT.layers, rng: &rng))
        }
        self.blocks = blocks
        finalNorm = LayerNorm(parameters, "final_norm", width: c, rng: &rng)
        head = parameters.add("head", shape: [BenchGPT.vocabulary, c], .normal(std: 0.02), decays: true, rng: &rng)
    }

    func embed(_ tape: Tape, _ tokens: [Int32], batch: Int, start: Int) -> Tensor {
        let length = tokens.count / batch
        let positions = (0..<batch).flatMap { _ in (start..<start + length).map { Int32($0) } }
        return tape.add(tape.embedding(tokenEmbedding, ids: tokens, idShape: [batch, length]),
                        tape.embedding(positionEmbedding, ids: positions, idShape: [batch, length]))  // (B, T, C)
    }

    func loss(_ tape: Tape, inputs: [Int32], targets: [Int32], batch: Int) -> Tensor {
        var h = embed(tape, inputs, batch: batch, start: 0)
        for block in blocks { h = block(tape, h, mask: .causal) }
        let logits = tape.linear(finalNorm(tape, h), weight: head)  // (B, T, V)
        return tape.crossEntropy(logits, targets: targets)
    }

    /// Logits (B, V) after feeding `tokens` (B rows, positions start…) through the cache.
    func decode(_ tokens: [Int32], batch: Int, start: Int, cache: KVCache) -> [Float] {
        let tape = Tape()
        defer { tape.reset() }
        var h = embed(tape, tokens, batch: batch, start: start)
        for (layer, block) in blocks.enumerated() { h = block.decode(tape, h, cache: cache, layer: layer) }
        let length = tokens.count / batch, c = BenchGPT.width
        let last = Tensor(shape: [batch, c])  // (B, C)
        for b in 0..<batch { (last.data + b * c).update(from: h.data + (b * length + length - 1) * c, count: c) }
        return tape.linear(finalNorm(tape, last), weight: head).values
    }
}

func benchGPTTrain(_ report: (Measurement) -> Void) {
    let (batch, length) = (8, BenchGPT.length)
    let model = BenchGPT(seed: 1)
    let optimizer = AdamW(parameters: model.parameters,
                          hyper: AdamWHyperparameters(learningRate: 3e-4, beta1: 0.9, beta2: 0.95, weightDecay: 0.1))
    var rng = RandomGenerator(seed: 2)
    let sequence = (0..<batch * (length + 1)).map { _ in Int32(rng.int(below: BenchGPT.vocabulary)) }
    var inputs: [Int32] = [], targets: [Int32] = []
    for b in 0..<batch {
        inputs += sequence[b * (length + 1)..<b * (length + 1) + length]
        targets += sequence[b * (length + 1) + 1..<(b + 1) * (length + 1)]
    }
    // Data-parallel over the cores: each worker takes a share of the batch (DataParallel).
    let workers = [model] + (1..<min(Threads.count, batch)).map { _ in
        BenchGPT(seed: 0, parameters: ParameterStore(mirroring: model.parameters))
    }
    let ms = medianMilliseconds {
        DataParallel.backward(workers.map(\.parameters), batch: batch) { w, share, tape in
            workers[w].loss(tape, inputs: Array(inputs[share.lowerBound * length..<share.upperBound * length]),
                            targets: Array(targets[share.lowerBound * length..<share.upperBound * length]), batch: share.count)
        }
        optimizer.update(learningRate: 3e-4)
    }
    report(Measurement(caseName: "gpt-train", variant: "step", milliseconds: ms,
                       figures: [("tokens_per_s", .number(Double(batch * length) * 1000 / ms))]))
}

func benchARSample(_ report: (Measurement) -> Void) {
    let model = BenchGPT(seed: 3)
    for batch in [1, 8] {
        var rng = RandomGenerator(seed: 4)
        let prefix = (0..<batch * 32).map { _ in Int32(rng.int(below: 1024)) }
        let cache = KVCache(layers: BenchGPT.layers, batch: batch, heads: BenchGPT.heads, maximumLength: BenchGPT.length,
                            headSize: BenchGPT.width / BenchGPT.heads)
        let ms = medianMilliseconds(minimumRepetitions: 5, minimumSeconds: 1) {
            cache.reset()
            var logits = model.decode(prefix, batch: batch, start: 0, cache: cache)
            for j in 0..<256 {
                let next = (0..<batch).map { b -> Int32 in
                    let row = logits[b * BenchGPT.vocabulary + 1024..<(b + 1) * BenchGPT.vocabulary]  // the 512 image ids
                    let top = row.max()!
                    let weights = row.map { exp($0 - top) }
                    return Int32(1024 + weights.withUnsafeBufferPointer { rng.categorical($0.baseAddress!, count: 512) })
                }
                if j < 255 { logits = model.decode(next, batch: batch, start: 32 + j, cache: cache) }
            }
        }
        report(Measurement(caseName: "ar-sample", variant: "b\(batch)", milliseconds: ms,
                           figures: [("ms_per_image", .number(ms / Double(batch)))]))
    }
}
