// Sampling the AR prior one image token at a time over a KV cache: temperature, top-k, top-p
// (Holtzman et al. 2019), classifier-free guidance (Ho & Salimans 2022) with the conditional
// and unconditional rows in one batch, and completion from given tokens (DALL-E's image
// completion keeps them exactly).
import Foundation
import TesseraTensor

public struct SamplingOptions: Codable, Equatable, Sendable {
    /// 0 picks the most likely code.
    public var temperature: Float = 1
    /// Keep the k most likely codes; 0 keeps all.
    public var topK: Int = 0
    /// Keep the smallest set of codes whose probability reaches p; 1 keeps all.
    public var topP: Float = 1
    /// Classifier-free guidance scale; 1 is plain conditional sampling.
    public var guidance: Float = 1

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, guidance: Float = 1) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.guidance = guidance
    }
}

extension ARPrior {
    /// Token grids (B·h·w) for `text` (B rows of Ttext tokens from `textTokens`). `keep`
    /// (B·h·w, −1 where free) fixes tokens; `onRow` hears of each finished grid row.
    public func sample(text: [Int32], options: SamplingOptions, rng: inout RandomGenerator, keep: [Int32]? = nil,
                       onRow: ((_ row: Int, _ tokens: [Int32]) -> Void)? = nil) -> [Int32] {
        let (t, n, k) = (config.textLength, config.imageLength, config.codebookSize)
        let batch = text.count / t
        precondition(text.count == batch * t && batch > 0, "sample: \(text.count) text tokens for Ttext \(t)")
        precondition(keep == nil || keep!.count == batch * n, "sample: keep has \(keep!.count) tokens for \(batch)×\(n)")
        let guided = options.guidance != 1
        let rows = guided ? 2 * batch : batch  // conditional rows, then unconditional ones
        let prefix = guided ? text + [Int32]((0..<batch).flatMap { _ in emptyText }) : text
        let cache = makeCache(batch: rows)
        var logits = decodeStep(prefix, batch: rows, start: 0, cache: cache)  // (rows, K)
        var tokens = [Int32](repeating: 0, count: batch * n)
        for j in 0..<n {
            var next = [Int32](repeating: 0, count: rows)
            for b in 0..<batch {
                var row = Array(logits[b * k..<(b + 1) * k])
                if guided {
                    applyGuidance(&row, unconditional: logits[(batch + b) * k..<(batch + b + 1) * k], scale: options.guidance)
                }
                let kept = keep.map { $0[b * n + j] } ?? -1
                let token = kept >= 0 ? kept : pickCode(&row, options: options, rng: &rng)
                tokens[b * n + j] = token
                next[b] = token
                if guided { next[batch + b] = token }
            }
            if (j + 1) % config.gridWidth == 0 { onRow?((j + 1) / config.gridWidth - 1, tokens) }
            if j + 1 < n { logits = decodeStep(next, batch: rows, start: t + j, cache: cache) }
        }
        return tokens
    }
}

/// Classifier-free guidance: u + s·(c − u) over a row of conditional logits c, in place.
/// A scale of 1 leaves the conditional logits as they are.
public func applyGuidance(_ conditional: inout [Float], unconditional: ArraySlice<Float>, scale: Float) {
    precondition(conditional.count == unconditional.count, "applyGuidance: \(conditional.count) and \(unconditional.count) logits")
    for (i, u) in zip(conditional.indices, unconditional) { conditional[i] = u + scale * (conditional[i] - u) }
}

/// One code from a row of logits under the sampling options (the row is overwritten).
public func pickCode(_ logits: inout [Float], options: SamplingOptions, rng: inout RandomGenerator) -> Int32 {
    if options.temperature == 0 {
        return Int32(logits.indices.max { logits[$0] < logits[$1] } ?? 0)
    }
    let count = logits.count
    if options.topK > 0 && options.topK < count {
        let threshold = logits.sorted(by: >)[options.topK - 1]
        var allowed = options.topK  // ties at the threshold beyond k are dropped in index order
        for i in 0..<count {
            if logits[i] > threshold { allowed -= 1 }
        }
        for i in 0..<count {
            if logits[i] < threshold { logits[i] = -.infinity } else if logits[i] == threshold {
                if allowed > 0 { allowed -= 1 } else { logits[i] = -.infinity }
            }
        }
    }
    let top = logits.max() ?? 0
    var probabilities = logits.map { $0 == -.infinity ? 0 : exp(($0 - top) / options.temperature) }
    let total = probabilities.reduce(0, +)
    for i in 0..<count { probabilities[i] /= total }
    if options.topP < 1 {
        let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }
        var cumulative: Float = 0
        var keptCount = 0
        for i in order {
            keptCount += 1
            cumulative += probabilities[i]
            if cumulative >= options.topP { break }
        }
        for i in order.dropFirst(keptCount) { probabilities[i] = 0 }
    }
    return probabilities.withUnsafeBufferPointer { Int32(rng.categorical($0.baseAddress!, count: count)) }
}
