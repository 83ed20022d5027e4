// The emoji reader on the installed Noto Color Emoji font and Unicode data (.ci/run installs
// them), and on corrupted copies of the font, which must give errors and never trap.
import Foundation
import Testing
import TesseraData
import TesseraImage

@Suite(.serialized) struct EmojiFromTheFont {
    static let font = try? EmojiFont(path: Emoji.defaultFont)

    @Test func everyNamedEmojiHasAGlyph() throws {
        let font = try #require(Self.font)
        let entries = try Emoji.readTestFile(Emoji.defaultTestFile)
        let annotations = try Emoji.Annotations(directory: Emoji.defaultAnnotations)
        let drawn = entries.filter { font.glyph(for: $0.scalars) != nil }
        #expect(drawn.count >= 3_600, "\(drawn.count) of \(entries.count)")
        let named = drawn.filter { Emoji.captions(for: $0, annotations: annotations).first?.isEmpty == false }
        #expect(named.count == drawn.count)
    }

    @Test func knownGlyphsDecodeTo136By128() throws {
        let font = try #require(Self.font)
        for sequence: [UInt32] in [[0x1F600], [0x1F469, 0x200D, 0x1F4BB], [0x1F1EF, 0x1F1F5], [0x23, 0xFE0F, 0x20E3],
                                   [0x1F44D, 0x1F3FD]] {
            let glyph = try #require(font.glyph(for: sequence.map { Unicode.Scalar($0)! }), "\(sequence)")
            let bitmap = try #require(try font.bitmap(glyph: glyph))
            #expect(bitmap.width == 136 && bitmap.height == 128 && bitmap.channels == 4)
        }
        // a ligature is a different glyph from its first component
        let woman = font.glyph(for: [Unicode.Scalar(0x1F469)!])
        #expect(woman != nil && woman != font.glyph(for: [0x1F469, 0x200D, 0x1F4BB].map { Unicode.Scalar($0)! }))
        #expect(font.glyph(for: [Unicode.Scalar(0x41)!, Unicode.Scalar(0x42)!]) == nil)
    }

    @Test func grinningFaceCaptionsAndPicture() throws {
        let font = try #require(Self.font)
        let annotations = try Emoji.Annotations(directory: Emoji.defaultAnnotations)
        let entry = try #require(try Emoji.readTestFile(Emoji.defaultTestFile).first)
        #expect(entry.name == "grinning face" && entry.group == "Smileys & Emotion" && entry.fileName == "1f600")
        let captions = Emoji.captions(for: entry, annotations: annotations)
        #expect(captions.first == "grinning face" && captions.contains("grin"))
        let glyph = try #require(font.glyph(for: entry.scalars))
        let bitmap = try #require(try font.bitmap(glyph: glyph))
        let picture = Emoji.picture(from: bitmap, size: 32)
        #expect(picture.width == 32 && picture.height == 32 && picture.channels == 3)
        #expect(Array(picture[0, 0]) == [255, 255, 255])  // transparent corner on white
        let centre = Array(picture[16, 12])                 // yellow face
        #expect(centre[0] > 200 && centre[1] > 150 && centre[2] < 120, "\(centre)")
    }

    @Test func variantsNeverStraddleTheSplit() throws {
        let entries = try Emoji.readTestFile(Emoji.defaultTestFile)
        var sides = [[UInt32]: Set<Bool>]()
        for entry in entries { sides[Emoji.baseKey(entry.scalars), default: []].insert(Emoji.isValidation(entry.scalars)) }
        #expect(sides.values.allSatisfy { $0.count == 1 })
        let validation = entries.filter { Emoji.isValidation($0.scalars) }.count
        #expect(validation > entries.count / 20 && validation < entries.count / 4, "\(validation)")
        // thumbs up in every skin tone, and man/woman/person technologist, share a side
        let thumbs = [[0x1F44D], [0x1F44D, 0x1F3FB], [0x1F44D, 0x1F3FF]].map { $0.map { Unicode.Scalar(UInt32($0))! } }
        #expect(Set(thumbs.map(Emoji.baseKey)).count == 1)
        let coders = [[0x1F468, 0x200D, 0x1F4BB], [0x1F469, 0x1F3FD, 0x200D, 0x1F4BB], [0x1F9D1, 0x200D, 0x1F4BB]]
        #expect(Set(coders.map { Emoji.baseKey($0.map { Unicode.Scalar(UInt32($0))! }) }).count == 1)
    }

    @Test func corruptFontsAreErrors() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Emoji.defaultFont))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-font-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("broken.ttf").path
        var cases: [Data] = [Data(), original.prefix(11), original.prefix(400), original.prefix(original.count / 2)]
        var state: UInt64 = 7
        for _ in 0..<12 {  // random bytes of the table directory and of the tables' headers overwritten
            var damaged = original
            for _ in 0..<64 {
                state = state &* 6_364_136_223_846_793_005 &+ 1
                let position = Int(state >> 33) % 4_096
                damaged[position] = UInt8(truncatingIfNeeded: state >> 13)
            }
            cases.append(damaged)
        }
        var errors = 0
        for data in cases {
            try data.write(to: URL(fileURLWithPath: path))
            do {
                let font = try EmojiFont(path: path)
                for code: UInt32 in [0x1F600, 0x1F44D, 0x2764] {  // reading glyphs must not trap either
                    if let glyph = font.glyph(for: [Unicode.Scalar(code)!]) { _ = try? font.bitmap(glyph: glyph) }
                }
            } catch {
                errors += 1
                #expect("\(error)".hasPrefix(path + ": "), "\(error)")
            }
        }
        #expect(errors >= 4)
    }

    @Test func malformedUnicodeFilesAreErrorsNotTraps() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-cldr-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for folder in ["annotations", "annotationsDerived"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(folder)", withIntermediateDirectories: true)
        }
        let good = "<annotation cp=\"😀\">face | grin</annotation>\n<annotation cp=\"😀\" type=\"tts\">grinning face</annotation>\n"
        try Data(good.utf8).write(to: URL(fileURLWithPath: "\(directory)/annotationsDerived/en.xml"))
        for broken in ["<annotation cp=\"</annotation>", "<annotation cp=\"x</annotation>", "no annotations here"] {
            try Data(broken.utf8).write(to: URL(fileURLWithPath: "\(directory)/annotations/en.xml"))
            let error = #expect(throws: (any Error).self, "\(broken)") { try Emoji.Annotations(directory: directory) }
            #expect("\(error!)".hasPrefix("\(directory)/annotations/en.xml: "))
        }
        try Data(good.utf8).write(to: URL(fileURLWithPath: "\(directory)/annotations/en.xml"))
        let annotations = try Emoji.Annotations(directory: directory)
        #expect(annotations.names["😀"] == "grinning face" && annotations.keywords["😀"] == ["face", "grin"])

        let testFile = "\(directory)/emoji-test.txt"
        for broken in ["1F600 # grin ; fully-qualified", "ZZZZ ; fully-qualified # ? E1.0 bad", "1F600 ; fully-qualified #", ""] {
            try Data(broken.utf8).write(to: URL(fileURLWithPath: testFile))
            #expect(throws: (any Error).self, "\(broken)") { try Emoji.readTestFile(testFile) }
        }
    }
}
