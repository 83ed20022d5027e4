// The cases of `tessera bench`, configured exactly as shared/BENCH.md specifies so that the
// figures sit beside the PyTorch peer's. Cases that are not built yet are absent, not faked.
import TesseraKernels
import TesseraTensor

enum BenchCase: String, CaseIterable {
    case sgemm
    case kernels

    func run(_ report: (Measurement) -> Void) {
        switch self {
        case .sgemm: benchSgemm(report)
        case .kernels: benchKernels(report)
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
            ("threads", .number(Double(BLASRuntime.threadCount))),
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
