// The two fixed layers under byte-level BPE (Radford et al. 2019, GPT-2): every byte gets a
// printable stand-in character, so merges and vocabulary files are plain text; and text is cut
// into words by GPT-2's pattern before merging, so merges never cross a word boundary:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented here by hand over Unicode scalars.
import Foundation

enum ByteLevel {
    /// The stand-in for each byte: printable Latin-1 bytes stand for themselves, the other 68
    /// (controls, space, DEL, no-break space, soft hyphen…) take U+0100 onwards in byte order.
    static let characters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            table[byte] = Character(Unicode.Scalar(printable ? UInt32(byte) : next)!)
            if !printable { next += 1 }
        }
        return table
    }()

    static let bytes: [Character: UInt8] = {
        Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($0.element, UInt8($0.offset)) })
    }()

    /// The stand-in string of a word's UTF-8 bytes.
    static func encode(_ word: Substring) -> String { String(word.utf8.map { characters[Int($0)] }) }
}

public enum PreTokenizer {
    private enum Kind { case letter, number, space, other }

    private static func kind(_ scalar: Unicode.Scalar) -> Kind {
        if scalar.properties.isWhitespace { return .space }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private static let contractions = ["s", "t", "re", "ve", "m", "ll", "d"]

    /// The words of `text` in order; joined they give `text` back.
    public static func split(_ text: String) -> [Substring] {
        let scalars = text.unicodeScalars
        var words = [Substring]()
        var i = scalars.startIndex
        func run(from start: String.UnicodeScalarView.Index, of wanted: Kind) -> String.UnicodeScalarView.Index {
            var j = start
            while j < scalars.endIndex && kind(scalars[j]) == wanted { j = scalars.index(after: j) }
            return j
        }
        while i < scalars.endIndex {
            let first = scalars[i]
            var end: String.UnicodeScalarView.Index? = nil
            if first == "'" {  // 's 't 're 've 'm 'll 'd
                let rest = String(Substring(scalars[scalars.index(after: i)...].prefix(2)))
                if let match = contractions.first(where: { rest.hasPrefix($0) }) {
                    end = scalars.index(i, offsetBy: 1 + match.count)
                }
            }
            if end == nil {
                // an optional single space, then a run of letters, of digits, or of other symbols
                let body = first == " " ? scalars.index(after: i) : i
                if body < scalars.endIndex {
                    let bodyKind = kind(scalars[body])
                    if bodyKind != .space { end = run(from: body, of: bodyKind) }
                }
            }
            if end == nil {  // white space; a run before a word leaves its last character to it
                let runEnd = run(from: i, of: .space)
                let beforeLast = scalars.index(before: runEnd)
                end = runEnd < scalars.endIndex && beforeLast > i ? beforeLast : runEnd
            }
            let stop = end!
            words.append(Substring(scalars[i..<stop]))
            i = stop
        }
        return words
    }
}

/// Captions as every Tessera tokenizer sees them: Unicode NFC, lower case, white space folded
/// to single spaces and trimmed.
public func normalizeCaption(_ text: String) -> String {
    text.precomposedStringWithCanonicalMapping.lowercased()
        .split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
}

/// How a model reads a prompt beyond `normalizeCaption`, measured on the captions it was trained
/// on. Emoji names never begin with an article, so "a red apple" would reach the emoji model as
/// a caption unlike any it saw (it drew a shapeless blob for it, and a red apple for "red
/// apple"); a model whose captions say so drops a prompt's leading "a", "an" or "the".
public struct PromptReading: Codable, Equatable, Sendable {
    public static let articles: Set<Substring> = ["a", "an", "the"]
    /// At most this share of the distinct training captions may begin with an article for the
    /// model to drop a prompt's leading one.
    public static let articleShare = 0.01

    /// Whether a prompt's leading article is dropped.
    public var dropsLeadingArticle: Bool
    /// Training captions that begin with an article all the same (the emoji "a button (blood
    /// type)", whose "a" is the letter): prompts equal to one are read whole.
    public var kept: [String]

    public init(dropsLeadingArticle: Bool, kept: [String] = []) {
        self.dropsLeadingArticle = dropsLeadingArticle
        self.kept = kept
    }

    /// The reading of a model trained on `captions` (normalised): nil, reading prompts as they
    /// are, unless at most `articleShare` of the distinct captions begin with an article.
    public init?(captions: some Sequence<String>) {
        let distinct = Set(captions)
        let articled = distinct.filter { Self.leadingArticle(of: $0) != nil }
        guard !distinct.isEmpty, Double(articled.count) <= Self.articleShare * Double(distinct.count) else { return nil }
        self.init(dropsLeadingArticle: true, kept: articled.sorted())
    }

    /// The caption's first word when it is an article followed by more words.
    static func leadingArticle(of caption: String) -> Substring? {
        let words = caption.split(separator: " ", maxSplits: 1)
        return words.count == 2 && articles.contains(words[0]) ? words[0] : nil
    }

    /// A normalised prompt as the model reads it.
    public func read(_ prompt: String) -> String {
        guard dropsLeadingArticle, !kept.contains(prompt), let article = Self.leadingArticle(of: prompt) else { return prompt }
        return String(prompt.dropFirst(article.count + 1))
    }
}
