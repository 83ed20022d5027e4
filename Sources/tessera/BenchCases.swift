// The cases of `tessera bench`, configured exactly as shared/BENCH.md specifies so that the
// figures sit beside the PyTorch peer's. Cases that are not built yet are absent, not faked.
import TesseraAttention
import TesseraKernels
import TesseraTensor

enum BenchCase: String, CaseIterable {
    case sgemm
    case kernels
    case attention
    case gptTrain = "gpt-train"
    case arSample = "ar-sample"
    case vqTrain = "vq-train"
    case ditTrain = "dit-train"
    case priorSample = "prior-sample"

    func run(_ report: (Measurement) -> Void) {
        switch self {
        case .sgemm: benchSgemm(report)
        case .kernels: benchKernels(report)
        case .attention: benchAttention(report)
        case .gptTrain: benchGPTTrain(report)
        case .arSample: benchARSample(report)
        case .vqTrain: benchVQTrain(report)
        case .ditTrain: benchDiTTrain(report)
        case .priorSample: benchPriorSample(report)
        }
    }
}

/// A buffer of uniform values in [−1, 1), freed by the caller.
private func randomBuffer(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
    var rng = RandomGenerator(seed: seed)
    rng.fillUniform(buffer, count: count, low: -1, high: 1)
    return buffer
}

/// Square single-precision products, C = A·B: the ceiling every dense op is measured against.
private func benchSgemm(_ report: (Measurement) -> Void) {
    for n in [256, 1024, 2048] {
        let a = randomBuffer(n * n, seed: 1), b = randomBuffer(n * n, seed: 2), c = randomBuffer(n * n, seed: 3)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        let ms = medianMilliseconds { gemm(m: n, n: n, k: n, a: a, b: b, c: c) }
        report(Measurement(caseName: "sgemm", variant: String(n), milliseconds: ms, figures: [
            ("gflops", .number(2 * Double(n * n * n) / (ms * 1e6))),
            ("core", .text(BLASRuntime.coreName)),
            ("threads", .number(Double(Threads.count))),
        ]))
    }
}

/// Memory-bound kernels at the sizes of the gpt-train case (B·T = 2,304 rows, d = 256, MLP
/// width 1,024, attention scores B·NH·T × T). Bytes count each array read or written once;
/// a backward that adds into its gradient reads and writes it.
private func benchKernels(_ report: (Measurement) -> Void) {
    let rows = 8 * 288, width = 256, hidden = 1024
    let scoreRows = 8 * 8 * 288, scoreColumns = 288
    let largest = scoreRows * scoreColumns
    let x = randomBuffer(largest, seed: 4), dy = randomBuffer(largest, seed: 5)
    let y = randomBuffer(largest, seed: 6), dx = randomBuffer(largest, seed: 7)
    let weight = randomBuffer(width, seed: 8), bias = randomBuffer(width, seed: 9)
    let dweight = randomBuffer(width, seed: 10), dbias = randomBuffer(width, seed: 11)
    let mean = randomBuffer(rows, seed: 12), rstd = randomBuffer(rows, seed: 13)
    defer { [x, dy, y, dx, weight, bias, dweight, dbias, mean, rstd].forEach { $0.deallocate() } }

    func measure(_ variant: String, shape: [Int], arrays: Int, _ body: () -> Void) {
        let ms = medianMilliseconds(body)
        let bytes = Double(arrays * shape.reduce(1, *) * MemoryLayout<Float>.size)
        report(Measurement(caseName: "kernels", variant: variant, milliseconds: ms, figures: [
            ("gbps", .number(bytes / (ms * 1e6))), ("shape", .integers(shape)),
        ]))
    }

    measure("layernorm-fwd", shape: [rows, width], arrays: 2) {
        layerNormForward(y, mean, rstd, x, weight, bias, rows: rows, channels: width)
    }
    measure("layernorm-bwd", shape: [rows, width], arrays: 4) {
        layerNormBackward(dx, dweight, dbias, dy, x, weight, mean, rstd, rows: rows, channels: width)
    }
    measure("gelu-fwd", shape: [rows, hidden], arrays: 2) { geluForward(y, x, rows * hidden) }
    measure("gelu-bwd", shape: [rows, hidden], arrays: 4) { geluBackward(dx, x, dy, rows * hidden) }
    measure("softmax-fwd", shape: [scoreRows, scoreColumns], arrays: 2) {
        softmaxForward(y, x, rows: scoreRows, columns: scoreColumns)
    }
    measure("softmax-bwd", shape: [scoreRows, scoreColumns], arrays: 4) {
        softmaxBackward(dx, y, dy, rows: scoreRows, columns: scoreColumns)
    }
}

/// BENCH.md case (a): B = 8, NH = 8, HS = 32; T = 288 causal and T = 256 full, forward and
/// forward + backward, counted as 4·B·NH·T²·HS FLOPs forward (3.5× that with the backward;
/// causal counted at the full T², as the peer's figures are). Then incremental decoding over a
/// KV cache: 288 positions one at a time, at B = 1 and B = 8.
private func benchAttention(_ report: (Measurement) -> Void) {
    let (batch, heads, headSize) = (8, 8, 32)
    for (length, mask, name) in [(288, AttentionMask.causal, "causal-288"), (256, .full, "full-256")] {
        let shape = AttentionShape(batch: batch, heads: heads, queryLength: length, keyLength: length, headSize: headSize)
        let count = batch * heads * length * headSize
        let q = randomBuffer(count, seed: 20), k = randomBuffer(count, seed: 21), v = randomBuffer(count, seed: 22)
        let out = randomBuffer(count, seed: 23), dout = randomBuffer(count, seed: 24)
        let dq = randomBuffer(count, seed: 25), dk = randomBuffer(count, seed: 26), dv = randomBuffer(count, seed: 27)
        let lse = randomBuffer(batch * heads * length, seed: 28)
        defer { [q, k, v, out, dout, dq, dk, dv, lse].forEach { $0.deallocate() } }
        let flops = 4 * Double(batch * heads * length * length * headSize)
        func forward() { attentionForward(out, lse, q, k, v, keyPadding: nil, shape: shape, mask: mask) }
        let forwardMs = medianMilliseconds(forward)
        report(Measurement(caseName: "attention", variant: "fwd-\(name)", milliseconds: forwardMs,
                           figures: [("gflops", .number(flops / (forwardMs * 1e6)))]))
        let bothMs = medianMilliseconds {
            forward()
            attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, keyPadding: nil, shape: shape, mask: mask)
        }
        report(Measurement(caseName: "attention", variant: "fwdbwd-\(name)", milliseconds: bothMs,
                           figures: [("gflops", .number(3.5 * flops / (bothMs * 1e6)))]))
    }
    for decodeBatch in [1, 8] {
        let length = 288
        let cache = KVCache(layers: 1, batch: decodeBatch, heads: heads, maximumLength: length, headSize: headSize)
        let perStep = decodeBatch * heads * headSize
        let q = randomBuffer(perStep, seed: 30), k = randomBuffer(perStep, seed: 31), v = randomBuffer(perStep, seed: 32)
        let out = randomBuffer(perStep, seed: 33), lse = randomBuffer(decodeBatch * heads, seed: 34)
        defer { [q, k, v, out, lse].forEach { $0.deallocate() } }
        let ms = medianMilliseconds {
            cache.reset()
            for _ in 0..<length {
                cache.append(layer: 0, key: k, value: v, count: 1)
                cache.attend(layer: 0, query: q, queryLength: 1, out: out, logSumExp: lse)
            }
        }
        report(Measurement(caseName: "attention", variant: "decode-b\(decodeBatch)", milliseconds: ms, figures: [
            ("us_per_step", .number(ms * 1000 / Double(length))),
            ("us_per_query", .number(ms * 1000 / Double(length * decodeBatch))),
            ("max_length", .number(Double(length))),
        ]))
    }
}
