// Byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant): training on a caption
// corpus, encoding, decoding, and the GPT-2 file pair `vocab.json` + `merges.txt`. Ids 0–255
// are the bytes in byte order, then one id per merge in the order learnt, then the special
// tokens; the files load in the usual byte-level BPE implementations (e.g. Hugging Face's).
import Foundation
import TesseraTensor

public struct BPETokenizer: Equatable, Sendable {
    /// Tokens the priors use around captions; never produced by encoding text.
    public static let specialTokens = ["<|startoftext|>", "<|endoftext|>", "<|pad|>"]

    /// Token strings (byte stand-ins, or a special token) by id.
    public let tokens: [String]
    /// Learnt merges in order: ids of the left and right parts.
    public let merges: [(Int, Int)]
    private let ids: [String: Int]
    private let ranks: [UInt64: Int]  // pair key → merge rank

    public static func == (a: BPETokenizer, b: BPETokenizer) -> Bool {
        a.tokens == b.tokens && a.merges.elementsEqual(b.merges, by: { $0 == $1 })
    }

    public var vocabularySize: Int { tokens.count }
    public var startOfText: Int { ids["<|startoftext|>"]! }
    public var endOfText: Int { ids["<|endoftext|>"]! }
    public var padding: Int { ids["<|pad|>"]! }

    /// Builds the vocabulary from merges of the 256 byte tokens.
    init(merges: [(Int, Int)]) {
        var tokens = ByteLevel.characters.map { String($0) }
        for (left, right) in merges { tokens.append(tokens[left] + tokens[right]) }
        tokens += BPETokenizer.specialTokens
        self.tokens = tokens
        self.merges = merges
        ids = Dictionary(tokens.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { first, _ in first })
        ranks = Dictionary(uniqueKeysWithValues: merges.enumerated().map { (pairKey($0.element.0, $0.element.1), $0.offset) })
    }

    // MARK: Training

    /// Learns merges on the normalised captions until the vocabulary (bytes, merges, special
    /// tokens) reaches `vocabularySize`, or until no pair occurs twice. The most frequent pair
    /// wins; ties go to the pair of smaller ids, so the result depends on the corpus alone.
    public static func train(captions: [String], vocabularySize: Int) -> BPETokenizer {
        precondition(vocabularySize >= 256 + specialTokens.count,
                     "BPE vocabulary \(vocabularySize) < 256 bytes + \(specialTokens.count) special tokens")
        var wordCounts = [String: Int]()
        for caption in captions {
            for word in PreTokenizer.split(normalizeCaption(caption)) { wordCounts[String(word), default: 0] += 1 }
        }
        // Each distinct word as a sequence of symbol ids, with its count; sorted for determinism.
        var words = wordCounts.keys.sorted().map { (symbols: Array($0.utf8).map(Int.init), count: wordCounts[$0]!) }
        var merges = [(Int, Int)]()
        let mergeBudget = vocabularySize - 256 - specialTokens.count
        while merges.count < mergeBudget {
            var pairCounts = [UInt64: Int]()
            for word in words where word.symbols.count > 1 {
                for k in 0..<(word.symbols.count - 1) {
                    pairCounts[pairKey(word.symbols[k], word.symbols[k + 1]), default: 0] += word.count
                }
            }
            guard let best = pairCounts.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }), best.value >= 2 else { break }
            let left = Int(best.key >> 32), right = Int(best.key & 0xFFFF_FFFF)
            let merged = 256 + merges.count
            merges.append((left, right))
            for w in words.indices where words[w].symbols.count > 1 {
                words[w].symbols = apply(left, right, as: merged, to: words[w].symbols)
            }
        }
        return BPETokenizer(merges: merges)
    }

    // MARK: Encoding

    /// Token ids of `text` as given (callers normalise captions first; see `normalizeCaption`).
    public func encode(_ text: String) -> [Int] {
        var out = [Int]()
        for word in PreTokenizer.split(text) {
            var symbols = Array(word.utf8).map(Int.init)
            while symbols.count > 1 {  // apply the earliest-learnt merge present, until none is
                var best: (rank: Int, index: Int)? = nil
                for k in 0..<(symbols.count - 1) {
                    if let rank = ranks[pairKey(symbols[k], symbols[k + 1])], rank < (best?.rank ?? .max) {
                        best = (rank, k)
                    }
                }
                guard let best else { break }
                let (left, right) = merges[best.rank]
                symbols = BPETokenizer.apply(left, right, as: 256 + best.rank, to: symbols)
            }
            out += symbols
        }
        return out
    }

    /// The text of `ids`; special tokens are left out unless `keepSpecialTokens`. Bytes that do
    /// not form valid UTF-8 (a sequence cut inside a character) become U+FFFD.
    public func decode(_ ids: [Int], keepSpecialTokens: Bool = false) -> String {
        var bytes = [UInt8]()
        for id in ids where id >= 0 && id < tokens.count {
            if id >= tokens.count - BPETokenizer.specialTokens.count {
                if keepSpecialTokens { bytes += Array(tokens[id].utf8) }
                continue
            }
            for character in tokens[id] { bytes.append(ByteLevel.bytes[character]!) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func apply(_ left: Int, _ right: Int, as merged: Int, to symbols: [Int]) -> [Int] {
        var out = [Int]()
        out.reserveCapacity(symbols.count)
        var k = 0
        while k < symbols.count {
            if k + 1 < symbols.count && symbols[k] == left && symbols[k + 1] == right {
                out.append(merged)
                k += 2
            } else {
                out.append(symbols[k])
                k += 1
            }
        }
        return out
    }
}

@inline(__always)
func pairKey(_ left: Int, _ right: Int) -> UInt64 { UInt64(left) << 32 | UInt64(right) }
