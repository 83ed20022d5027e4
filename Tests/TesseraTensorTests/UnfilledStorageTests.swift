// Ops whose kernels write every element skip the zero fill of their outputs, and a first
// gradient contribution from a product overwrites instead of adding to zeros. With the unfilled
// buffers poisoned with NaN, a graph of every such op (with fan-out, so later contributions
// accumulate) must give the same values and gradients as with zero-filled buffers.
import Testing
import TesseraTensor

@Suite struct UnfilledStorage {
    /// The loss and every input's gradient of a graph over linear, matmul (2-D and batched,
    /// transposed), the activations, softmax, layer and group norm.
    func run(poisoned: Bool) -> [[Float]] {
        Storage.poisonUnfilled = poisoned
        defer { Storage.poisonUnfilled = false }
        var rng = RandomGenerator(seed: 3)
        func input(_ shape: [Int]) -> Tensor {
            let t = Tensor(shape: shape, requiresGrad: true)
            rng.fillNormal(t.data, count: t.count)
            return t
        }
        let x = input([2, 3, 5]), w1 = input([6, 5]), b1 = input([6]), w2 = input([6, 6])
        let gain = input([6]), shift = input([6]), m = input([4, 6]), groupGain = input([4]), groupShift = input([4])
        let tape = Tape()
        let h = tape.linear(x, weight: w1, bias: b1)                                  // (2, 3, 6)
        let a = tape.add(tape.gelu(tape.layerNorm(h, weight: gain, bias: shift)), tape.silu(h))
        let s = tape.softmax(tape.relu(tape.linear(a, weight: w2)))                   // (2, 3, 6)
        let p = tape.matmul(s, a, transposeB: true)                                   // (2, 3, 3)
        let q = tape.matmul(tape.reshape(a, [6, 6]), m, transposeB: true)            // (6, 4)
        let g = tape.groupNorm(tape.reshape(q, [2, 4, 3, 1]), groups: 2, weight: groupGain, bias: groupShift)
        let loss = tape.add(tape.sum(tape.mul(p, p)), tape.sum(tape.mul(g, g)))
        tape.backward(loss)
        return [loss.values] + [x, w1, b1, w2, gain, shift, m, groupGain, groupShift].map(\.gradValues)
    }

    @Test func poisonedBuffersChangeNothing() {
        let plain = run(poisoned: false), poisoned = run(poisoned: true)
        #expect(plain.allSatisfy { $0.allSatisfy(\.isFinite) })
        #expect(poisoned == plain)
    }
}
