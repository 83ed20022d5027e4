// The multi-head attention layer every Tessera transformer uses: query, key, value and output
// projections around the shared attention kernels; self- or cross-attention, with an
// incremental path over a KV cache for sampling. Checkpoint keys: NAME.{query,key,value,output}.{weight,bias}.
import TesseraAttention

public struct MultiHeadAttention {
    public let width: Int
    public let numHeads: Int
    public var headSize: Int { width / numHeads }
    let queryWeight, queryBias, keyWeight, keyBias, valueWeight, valueBias, outputWeight, outputBias: Tensor

    /// `contextWidth` is the width of what keys and values are computed from (cross-attention);
    /// by default the layer's own width.
    public init(_ name: String, width: Int, numHeads: Int, contextWidth: Int? = nil,
                parameters: ParameterStore, rng: inout RandomGenerator, initStd: Float = 0.02) {
        precondition(width % numHeads == 0, "MultiHeadAttention: width \(width) not divisible by \(numHeads) heads")
        self.width = width
        self.numHeads = numHeads
        let contextWidth = contextWidth ?? width
        func weight(_ part: String, _ inputs: Int) -> Tensor {
            parameters.add("\(name).\(part).weight", shape: [width, inputs], .normal(std: initStd), decays: true, rng: &rng)
        }
        func bias(_ part: String) -> Tensor {
            parameters.add("\(name).\(part).bias", shape: [width], .zeros, decays: false, rng: &rng)
        }
        queryWeight = weight("query", width)
        queryBias = bias("query")
        keyWeight = weight("key", contextWidth)
        keyBias = bias("key")
        valueWeight = weight("value", contextWidth)
        valueBias = bias("value")
        outputWeight = weight("output", width)
        outputBias = bias("output")
    }

    /// (B, T, C) → (B, NH, T, HS)
    private func splitHeads(_ tape: Tape, _ x: Tensor) -> Tensor {
        tape.swapMiddleAxes(tape.reshape(x, [x.shape[0], x.shape[1], numHeads, headSize]))
    }

    /// (B, NH, T, HS) → (B, T, C)
    private func mergeHeads(_ tape: Tape, _ x: Tensor) -> Tensor {
        let merged = tape.swapMiddleAxes(x)  // (B, T, NH, HS)
        return tape.reshape(merged, [merged.shape[0], merged.shape[1], width])
    }

    /// x (B, T, C) attends over itself, or over `context` (B, S, Cctx): → (B, T, C).
    public func callAsFunction(
        _ tape: Tape, _ x: Tensor, context: Tensor? = nil, mask: AttentionMask, keyPadding: [Bool]? = nil
    ) -> Tensor {
        let source = context ?? x
        let q = splitHeads(tape, tape.linear(x, weight: queryWeight, bias: queryBias))         // (B, NH, T, HS)
        let k = splitHeads(tape, tape.linear(source, weight: keyWeight, bias: keyBias))        // (B, NH, S, HS)
        let v = splitHeads(tape, tape.linear(source, weight: valueWeight, bias: valueBias))    // (B, NH, S, HS)
        let y = tape.attention(query: q, key: k, value: v, mask: mask, keyPadding: keyPadding)  // (B, NH, T, HS)
        return tape.linear(mergeHeads(tape, y), weight: outputWeight, bias: outputBias)
    }

    /// Self-attention for new positions x (B, Tnew, C) that follow those already in `cache`
    /// at `layer`: appends their keys and values, then attends over everything cached.
    /// For sampling; it records no gradients for the cached keys. keyPadding: (B, maximumLength).
    public func decode(
        _ tape: Tape, _ x: Tensor, cache: KVCache, layer: Int, mask: AttentionMask = .causal,
        keyPadding: [Bool]? = nil
    ) -> Tensor {
        let (batch, newLength) = (x.shape[0], x.shape[1])
        let q = splitHeads(tape, tape.linear(x, weight: queryWeight, bias: queryBias))   // (B, NH, Tnew, HS)
        let k = splitHeads(tape, tape.linear(x, weight: keyWeight, bias: keyBias))
        let v = splitHeads(tape, tape.linear(x, weight: valueWeight, bias: valueBias))
        cache.append(layer: layer, key: k.data, value: v.data, count: newLength)
        let y = Tensor(shape: [batch, numHeads, newLength, headSize])                   // (B, NH, Tnew, HS)
        let logSumExp = Tensor(shape: [batch, numHeads, newLength])
        withOptionalPointer(keyPadding) { padding in
            cache.attend(layer: layer, query: q.data, queryLength: newLength, out: y.data,
                         logSumExp: logSumExp.data, mask: mask, keyPadding: padding)
        }
        return tape.linear(mergeHeads(tape, y), weight: outputWeight, bias: outputBias)
    }
}
