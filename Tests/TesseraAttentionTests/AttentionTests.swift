// The attention kernels against a naive Double reference: every mask, key padding, cross-
// attention, odd sizes and several block sizes; gradients through the tape op; decoding over a
// KV cache against the full causal forward; fully padded rows.
import Foundation
import Testing
import TesseraAttention
import TesseraTensor
import TesseraTestSupport

struct AttentionCase: CustomStringConvertible, Sendable {
    var batch = 2, heads = 3, queryLength = 5, keyLength = 5, headSize = 8
    var mask = AttentionMask.causal
    var padded = false
    var blocks = AttentionBlocks()
    var description: String {
        "B\(batch) NH\(heads) Tq\(queryLength) Tk\(keyLength) HS\(headSize) \(mask) padded:\(padded) blocks \(blocks.queries)×\(blocks.keys)"
    }

    /// Pads the last key of item 0 and the first two keys of item 1 (when padded).
    var padding: [Bool]? {
        guard padded else { return nil }
        return (0..<batch * keyLength).map { index in
            let (b, j) = (index / keyLength, index % keyLength)
            return b == 0 ? j == keyLength - 1 : (b == 1 && j < 2)
        }
    }

    func visible(_ b: Int, _ i: Int, _ j: Int) -> Bool {
        if let padding, padding[b * keyLength + j] { return false }
        let position = mask == .full ? i : keyLength - queryLength + i
        switch mask {
        case .full: return true
        case .causal: return j <= position
        case .prefix(let length): return j <= max(position, length - 1)
        }
    }
}

let attentionCases: [AttentionCase] = [
    AttentionCase(),
    AttentionCase(queryLength: 1, keyLength: 1),
    AttentionCase(queryLength: 37, keyLength: 37, headSize: 32, blocks: AttentionBlocks(queries: 8, keys: 16)),
    AttentionCase(queryLength: 37, keyLength: 37, headSize: 64, mask: .full, padded: true, blocks: AttentionBlocks(queries: 16, keys: 8)),
    AttentionCase(queryLength: 29, keyLength: 29, mask: .prefix(9), padded: true, blocks: AttentionBlocks(queries: 4, keys: 8)),
    AttentionCase(queryLength: 70, keyLength: 70, headSize: 32, mask: .prefix(32)),
    AttentionCase(queryLength: 6, keyLength: 11, mask: .full, padded: true),                 // cross-attention
    AttentionCase(queryLength: 7, keyLength: 19, mask: .causal, blocks: AttentionBlocks(queries: 3, keys: 5)),  // new queries after cached keys
    AttentionCase(batch: 1, heads: 1, queryLength: 130, keyLength: 130, headSize: 8),
]

func randomInputs(_ c: AttentionCase, seed: UInt64) -> [GradientCheckInput] {
    var rng = RandomGenerator(seed: seed)
    return [GradientCheckInput.random([c.batch, c.heads, c.queryLength, c.headSize], &rng),
            .random([c.batch, c.heads, c.keyLength, c.headSize], &rng),
            .random([c.batch, c.heads, c.keyLength, c.headSize], &rng)]
}

@Suite struct AttentionKernels {
    @Test(arguments: attentionCases)
    func forwardAndGradientsMatchTheReference(_ c: AttentionCase) {
        let inputs = randomInputs(c, seed: UInt64(c.queryLength * 100 + c.keyLength))
        // Large cases check a seeded sample of 60 elements per input by finite differences.
        let result = gradientCheck(inputs, maximumChecked: 60) { tape, x in
            tape.attention(query: x[0], key: x[1], value: x[2], mask: c.mask, keyPadding: c.padding, blocks: c.blocks)
        } reference: { x in
            Reference.attention(x[0], x[1], x[2], batch: c.batch, heads: c.heads, queryLength: c.queryLength,
                                keyLength: c.keyLength, headSize: c.headSize, visible: c.visible)
        }
        #expect(result.forwardError <= 5e-6, "\(c): \(result)")
        #expect(result.gradientError <= 1e-5, "\(c): \(result)")
    }

    @Test func blockSizesDoNotChangeTheResult() {
        let c = AttentionCase(batch: 2, heads: 4, queryLength: 288, keyLength: 288, headSize: 32)
        let x = randomInputs(c, seed: 3).map { Tensor(shape: $0.shape, values: $0.values) }
        let tape = Tape()
        let reference = tape.attention(query: x[0], key: x[1], value: x[2], mask: .causal, blocks: AttentionBlocks(queries: 288, keys: 288))
        for blocks in [AttentionBlocks(), AttentionBlocks(queries: 17, keys: 33), AttentionBlocks(queries: 1, keys: 1)] {
            let other = tape.attention(query: x[0], key: x[1], value: x[2], mask: .causal, blocks: blocks)
            let error = zip(other.values, reference.values).map { abs($0 - $1) }.max()!
            #expect(error < 1e-5, "blocks \(blocks): \(error)")
        }
    }

    @Test func fullyPaddedRowsAreZeroNotNaN() {
        let (batch, heads, length, headSize) = (2, 2, 6, 8)
        var rng = RandomGenerator(seed: 4)
        let q = Tensor(shape: [batch, heads, length, headSize], requiresGrad: true)
        let k = Tensor(shape: [batch, heads, length, headSize], requiresGrad: true)
        let v = Tensor(shape: [batch, heads, length, headSize], requiresGrad: true)
        for t in [q, k, v] { rng.fillNormal(t.data, count: t.count) }
        // Item 1 has every key padded; item 0 none.
        let padding = (0..<batch * length).map { $0 >= length }
        let tape = Tape()
        let out = tape.attention(query: q, key: k, value: v, mask: .full, keyPadding: padding)
        tape.backward(tape.sum(out))
        let half = heads * length * headSize
        #expect(out.values[half...].allSatisfy { $0 == 0 })
        #expect(out.values[..<half].contains { $0 != 0 })
        for t in [q, k, v] { #expect(t.gradValues.allSatisfy { $0.isFinite }) }
        #expect(q.gradValues[half...].allSatisfy { $0 == 0 })
    }
}

@Suite struct Decoding {
    @Test(arguments: [1, 8])
    func cachedDecodingEqualsTheFullCausalForward(batch: Int) {
        let (heads, length, headSize) = (4, 45, 16)
        var rng = RandomGenerator(seed: 5)
        let q = Tensor(shape: [batch, heads, length, headSize]), k = Tensor(shape: q.shape), v = Tensor(shape: q.shape)
        for t in [q, k, v] { rng.fillNormal(t.data, count: t.count) }
        let full = Tape().attention(query: q, key: k, value: v, mask: .causal).values

        let cache = KVCache(layers: 2, batch: batch, heads: heads, maximumLength: 64, headSize: headSize)
        var decoded = [Float](repeating: 0, count: q.count)
        // Feed positions 0..<3 at once (a prompt), then one at a time, on layer 1.
        var position = 0
        while position < length {
            let step = position == 0 ? 3 : 1
            func slice(_ t: Tensor) -> [Float] {
                let values = t.values
                var result: [Float] = []
                for head in 0..<batch * heads {
                    let start: Int = (head * length + position) * headSize
                    result += values[start..<start + step * headSize]
                }
                return result
            }
            let (newQ, newK, newV) = (slice(q), slice(k), slice(v))
            cache.append(layer: 1, key: newK, value: newV, count: step)
            var out = [Float](repeating: 0, count: newQ.count), lse = [Float](repeating: 0, count: batch * heads * step)
            cache.attend(layer: 1, query: newQ, queryLength: step, out: &out, logSumExp: &lse)
            for head in 0..<batch * heads {
                for r in 0..<step * headSize { decoded[(head * length + position) * headSize + r] = out[head * step * headSize + r] }
            }
            position += step
        }
        #expect(cache.lengths == [0, length])
        // Relative to the output's largest magnitude: the two paths sum in different orders.
        let worst = zip(decoded, full).map { abs($0 - $1) }.max()! / full.map(abs).max()!
        #expect(worst <= 1e-5, "relative error \(worst)")
    }

    @Test func layerDecodeEqualsItsFullForward() {
        var rng = RandomGenerator(seed: 6)
        let store = ParameterStore()
        let layer = MultiHeadAttention("attn", width: 32, numHeads: 4, parameters: store, rng: &rng, initStd: 0.3)
        let (batch, length) = (2, 9)
        let x = Tensor(shape: [batch, length, 32])
        rng.fillNormal(x.data, count: x.count)
        let tape = Tape()
        let full = layer(tape, x, mask: .causal).values
        let cache = KVCache(layers: 1, batch: batch, heads: 4, maximumLength: length, headSize: 8)
        var decoded: [[Float]] = []
        for t in 0..<length {
            var row: [Float] = []
            for b in 0..<batch {
                let start: Int = (b * length + t) * 32
                row += x.values[start..<start + 32]
            }
            let step = Tensor(shape: [batch, 1, 32], values: row)
            decoded.append(layer.decode(tape, step, cache: cache, layer: 0).values)
        }
        for b in 0..<batch { for t in 0..<length { for c in 0..<32 {
            let expected = full[(b * length + t) * 32 + c], got = decoded[t][b * 32 + c]
            #expect(abs(got - expected) <= 1e-5 * max(1, abs(expected)))
        } } }
    }
}
