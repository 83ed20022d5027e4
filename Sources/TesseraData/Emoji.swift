// The emoji dataset: every fully-qualified emoji of Unicode's emoji-test.txt that the font draws,
// captioned with its CLDR English name and keywords (annotations and annotationsDerived), split
// into train and validation by base emoji so that skin-tone and gender variants of one drawing
// never straddle the split.
import Foundation
import TesseraImage
import TesseraTensor
import TesseraText

public enum Emoji {
    public static let defaultFont = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
    public static let defaultAnnotations = "/usr/share/unicode/cldr/common"
    public static let defaultTestFile = "/usr/share/unicode/emoji/emoji-test.txt"
    /// One base emoji in `validationModulus` goes to validation.
    public static let validationModulus: UInt64 = 10

    public struct Entry: Equatable, Sendable {
        public var scalars: [Unicode.Scalar]
        public var name: String
        public var group: String
        public var subgroup: String
        /// Lower-case hexadecimal code points joined by "-", e.g. "1f469-200d-1f4bb".
        public var fileName: String { scalars.map { String($0.value, radix: 16) }.joined(separator: "-") }
    }

    /// The fully-qualified entries of emoji-test.txt, in file order.
    public static func readTestFile(_ path: String) throws -> [Entry] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw TesseraError("missing or unreadable (install unicode-data)", path: path)
        }
        var entries = [Entry](), group = "", subgroup = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# group: ") { group = String(line.dropFirst(9)); continue }
            if line.hasPrefix("# subgroup: ") { subgroup = String(line.dropFirst(12)); continue }
            guard !line.hasPrefix("#"), let semicolon = line.firstIndex(of: ";"), let hash = line.firstIndex(of: "#"),
                  semicolon < hash else { continue }
            guard line[semicolon..<hash].contains("fully-qualified") else { continue }
            let codes = line[..<semicolon].split(separator: " ").map { UInt32($0, radix: 16).flatMap(Unicode.Scalar.init) }
            guard !codes.isEmpty, !codes.contains(where: { $0 == nil }) else {
                throw TesseraError("bad code points in line: \(line.prefix(60))", path: path)
            }
            // "# 😀 E1.0 grinning face": the name follows the version
            let comment = line[line.index(after: hash)...].split(separator: " ", maxSplits: 2)
            guard comment.count == 3 else { throw TesseraError("no name in line: \(line.prefix(60))", path: path) }
            entries.append(Entry(scalars: codes.map { $0! }, name: String(comment[2]), group: group, subgroup: subgroup))
        }
        guard !entries.isEmpty else { throw TesseraError("holds no fully-qualified emoji", path: path) }
        return entries
    }

    /// CLDR annotations: for each emoji (U+FE0F removed) its spoken name and keyword phrases.
    public struct Annotations: Sendable {
        public var names: [String: String] = [:]
        public var keywords: [String: [String]] = [:]

        /// Reads `annotations/en.xml` and `annotationsDerived/en.xml` under `directory`.
        public init(directory: String) throws {
            for file in ["annotations/en.xml", "annotationsDerived/en.xml"] {
                let path = (directory as NSString).appendingPathComponent(file)
                guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                    throw TesseraError("missing or unreadable (install unicode-cldr-core, or pass --annotations)", path: path)
                }
                try read(text, path: path)
            }
        }

        /// The `<annotation cp="…" [type="tts"]>…</annotation>` elements, one per line in CLDR's
        /// files; this is not a general XML reader.
        mutating func read(_ text: String, path: String) throws {
            var found = 0
            for line in text.split(separator: "\n") {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                let opening = "<annotation cp=\"", closing = "</annotation>"
                guard trimmed.count >= opening.count + closing.count + 1,
                      trimmed.hasPrefix(opening), trimmed.hasSuffix(closing) else { continue }
                let attributesStart = trimmed.index(trimmed.startIndex, offsetBy: opening.count)
                let bodyEnd = trimmed.index(trimmed.endIndex, offsetBy: -closing.count)
                guard let close = trimmed[attributesStart..<bodyEnd].firstIndex(of: ">") else {
                    throw TesseraError("malformed annotation: \(trimmed.prefix(60))", path: path)
                }
                let attributes = trimmed[attributesStart..<close]
                guard let quote = attributes.firstIndex(of: "\"") else {
                    throw TesseraError("malformed annotation: \(trimmed.prefix(60))", path: path)
                }
                let key = Emoji.key(xmlText(attributes[..<quote]))
                let body = xmlText(trimmed[trimmed.index(after: close)..<bodyEnd])
                if attributes.contains("type=\"tts\"") {
                    names[key] = body
                } else {
                    keywords[key] = body.components(separatedBy: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                }
                found += 1
            }
            guard found > 0 else { throw TesseraError("holds no <annotation> elements", path: path) }
        }
    }

    /// The annotation key of an emoji: its code points without U+FE0F.
    static func key<S: StringProtocol>(_ text: S) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value != 0xFE0F }))
    }

    /// Captions of an emoji: its name, then each keyword phrase not equal to it.
    public static func captions(for entry: Entry, annotations: Annotations) -> [String] {
        let key = key(String(String.UnicodeScalarView(entry.scalars)))
        let name = normalizeCaption(annotations.names[key] ?? entry.name)
        var captions = [name]
        for keyword in annotations.keywords[key] ?? [] {
            let phrase = normalizeCaption(keyword)
            if !phrase.isEmpty && !captions.contains(phrase) { captions.append(phrase) }
        }
        return captions
    }

    /// What variants of one drawing share: the code points without U+FE0F, zero-width joiners,
    /// skin tones and gender signs, with man, woman and person (and boy, girl, child; old man,
    /// old woman, older person) taken as one.
    public static func baseKey(_ scalars: [Unicode.Scalar]) -> [UInt32] {
        let dropped: Set<UInt32> = [0xFE0F, 0x200D, 0x2640, 0x2642, 0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF]
        let same: [UInt32: UInt32] = [0x1F468: 0x1F9D1, 0x1F469: 0x1F9D1, 0x1F466: 0x1F9D2, 0x1F467: 0x1F9D2,
                                      0x1F474: 0x1F9D3, 0x1F475: 0x1F9D3]
        return scalars.map(\.value).filter { !dropped.contains($0) }.map { same[$0] ?? $0 }
    }

    /// Validation when the FNV-1a hash of the base key falls in one residue of `validationModulus`.
    public static func isValidation(_ scalars: [Unicode.Scalar]) -> Bool {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for value in baseKey(scalars) {
            for shift in stride(from: 0, to: 32, by: 8) {
                hash = (hash ^ UInt64((value >> UInt32(shift)) & 0xFF)) &* 0x100_0000_01B3
            }
        }
        return hash % validationModulus == 0
    }

    /// A glyph's bitmap as the dataset stores it: the square drawing (136×128 → the middle
    /// 128×128), composited on white, area-resized to `size`.
    public static func picture(from bitmap: Image, size: Int) -> Image {
        let side = min(bitmap.width, bitmap.height)
        var square = Image(width: side, height: side, channels: bitmap.channels,
                           pixels: [UInt8](repeating: 0, count: side * side * bitmap.channels))
        square.paste(bitmap, x: -(bitmap.width - side) / 2, y: -(bitmap.height - side) / 2)
        return square.flattened().resized(width: size, height: size)
    }
}

/// XML character data with the five named entities and numeric references decoded.
func xmlText<S: StringProtocol>(_ raw: S) -> String {
    var out = "", rest = Substring(raw)
    while let amp = rest.firstIndex(of: "&") {
        out += rest[..<amp]
        guard let semicolon = rest[amp...].firstIndex(of: ";") else { break }
        let entity = rest[rest.index(after: amp)..<semicolon]
        let named = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
        if let text = named[String(entity)] {
            out += text
        } else if entity.hasPrefix("#"), let value = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : UInt32(entity.dropFirst()),
                  let scalar = Unicode.Scalar(value) {
            out.unicodeScalars.append(scalar)
        } else {
            out += rest[amp...semicolon]
        }
        rest = rest[rest.index(after: semicolon)...]
    }
    return out + rest
}
