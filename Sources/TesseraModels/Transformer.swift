// The pre-norm transformer block of GPT-2 (Radford et al. 2019) as nanoGPT writes it:
// x = x + attn(ln1(x)); x = x + mlp(ln2(x)), with the shared MultiHeadAttention layer. The
// decode path runs the same block over new positions with a KV cache, for sampling.
import TesseraAttention
import TesseraTensor

public struct LayerNorm {
    let weight: Tensor  // (C)
    let bias: Tensor  // (C)

    public init(_ parameters: ParameterStore, _ name: String, width: Int, rng: inout RandomGenerator) {
        weight = parameters.add(name + ".weight", shape: [width], .ones, decays: false, rng: &rng)
        bias = parameters.add(name + ".bias", shape: [width], .zeros, decays: false, rng: &rng)
    }

    public func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor { tape.layerNorm(x, weight: weight, bias: bias) }
}

public struct Linear {
    let weight: Tensor  // (Cout, Cin)
    let bias: Tensor  // (Cout)

    public init(_ parameters: ParameterStore, _ name: String, in inputs: Int, out outputs: Int, std: Float = 0.02,
         rng: inout RandomGenerator) {
        weight = parameters.add(name + ".weight", shape: [outputs, inputs], .normal(std: std), decays: true, rng: &rng)
        bias = parameters.add(name + ".bias", shape: [outputs], .zeros, decays: false, rng: &rng)
    }

    public func callAsFunction(_ tape: Tape, _ x: Tensor) -> Tensor { tape.linear(x, weight: weight, bias: bias) }
}

public struct TransformerBlock {
    let norm1: LayerNorm
    let attention: MultiHeadAttention
    let norm2: LayerNorm
    let expand: Linear
    let project: Linear

    /// GPT-2 scales the residual projections' initialisation by 1/√(2·layers).
    public init(_ parameters: ParameterStore, _ name: String, width: Int, numHeads: Int, layers: Int, rng: inout RandomGenerator) {
        let residualStd = 0.02 / Float(2 * layers).squareRoot()
        norm1 = LayerNorm(parameters, name + ".norm1", width: width, rng: &rng)
        attention = MultiHeadAttention(name + ".attention", width: width, numHeads: numHeads, parameters: parameters, rng: &rng)
        norm2 = LayerNorm(parameters, name + ".norm2", width: width, rng: &rng)
        expand = Linear(parameters, name + ".mlp.expand", in: width, out: 4 * width, rng: &rng)
        project = Linear(parameters, name + ".mlp.project", in: 4 * width, out: width, std: residualStd, rng: &rng)
    }

    /// x (B, T, C) → (B, T, C).
    public func callAsFunction(_ tape: Tape, _ x: Tensor, mask: AttentionMask) -> Tensor {
        let h = tape.add(x, attention(tape, norm1(tape, x), mask: mask))  // (B, T, C)
        return tape.add(h, project(tape, tape.gelu(expand(tape, norm2(tape, h)))))
    }

    /// New positions x (B, Tnew, C) after those in `cache` at `layer` → (B, Tnew, C).
    public func decode(_ tape: Tape, _ x: Tensor, cache: KVCache, layer: Int) -> Tensor {
        let h = tape.add(x, attention.decode(tape, norm1(tape, x), cache: cache, layer: layer))  // (B, Tnew, C)
        return tape.add(h, project(tape, tape.gelu(expand(tape, norm2(tape, h)))))
    }
}
