// `tessera dataset shapes|emoji`: writes a dataset folder (NAME.png beside NAME.txt, DESIGN.md)
// of Shapes v1 scenes or of the emoji in the system's colour emoji font.
import ArgumentParser
import Foundation
import TesseraData
import TesseraImage
import TesseraTensor

struct Dataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a sample dataset folder (NAME.png + NAME.txt pairs).",
        subcommands: [ShapesDataset.self, EmojiDataset.self])
}

/// Creates the output folder (and its parents) or explains why it cannot.
func makeOutputDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else { throw TesseraError("exists and is not a folder", path: path) }
        return
    }
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw TesseraError("cannot create the folder: \(error.localizedDescription)", path: path)
    }
}

/// Writes one dataset pair: NAME.png and NAME.txt (one caption per line), each atomically.
func writePair(_ image: Image, captions: [String], name: String, in directory: String) throws {
    let base = (directory as NSString).appendingPathComponent(name)
    try image.writePNG(to: base + ".png")
    try AtomicFile.write(Data((captions.joined(separator: "\n") + "\n").utf8), to: base + ".txt")
}

struct ShapesDataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shapes",
        abstract: "Render Shapes v1 scenes (shared/SHAPES.md) with their captions.")

    @Option(help: "train, test-seen or test-novel.")
    var split: String = "train"

    @Option(help: "How many pictures.")
    var count: Int = 1000

    @Option(help: "The same (seed, split, index) always gives the same picture.")
    var seed: UInt64 = 0

    @Option(help: "Output folder (created if missing).")
    var out: String

    func validate() throws {
        guard Shapes.Split(rawValue: split) != nil else {
            throw ValidationError("unknown split '\(split)'; use train, test-seen or test-novel")
        }
        guard count > 0 && count <= 10_000_000 else { throw ValidationError("--count must be between 1 and 10,000,000") }
    }

    func run() throws {
        let split = Shapes.Split(rawValue: split)!
        try makeOutputDirectory(out)
        let digits = max(6, String(count - 1).count)
        for index in 0..<count {
            let scene = Shapes.scene(seed: seed, split: split, index: index)
            let number = String(index)
            let name = "\(split.rawValue)-" + String(repeating: "0", count: max(0, digits - number.count)) + number
            try writePair(Shapes.render(scene), captions: [scene.caption], name: name, in: out)
        }
        print("wrote \(count) Shapes v1 \(split.rawValue) pairs to \(out)")
    }
}

struct EmojiDataset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emoji",
        abstract: "Draw every emoji of the colour emoji font with its CLDR name and keywords as captions.",
        discussion: """
            Writes OUT/train and OUT/validation. One base emoji in ten (by a hash of its code points \
            without skin tones, gender signs and joiners, with man/woman/person as one) goes to \
            validation with all its variants, so no drawing straddles the split.
            """)

    @Option(help: "The colour emoji font (CBDT/CBLC).")
    var font: String = Emoji.defaultFont

    @Option(help: "CLDR 'common' folder holding annotations/en.xml and annotationsDerived/en.xml.")
    var annotations: String = Emoji.defaultAnnotations

    @Option(name: .customLong("emoji-test"), help: "Unicode's emoji-test.txt.")
    var emojiTest: String = Emoji.defaultTestFile

    @Option(help: "Side of each square picture in pixels.")
    var size: Int = 32

    @Option(help: "Output folder (created if missing).")
    var out: String

    func validate() throws {
        guard (8...512).contains(size) else { throw ValidationError("--size must be between 8 and 512 pixels") }
    }

    func run() throws {
        let start = Date()
        let emojiFont = try EmojiFont(path: font)
        let notes = try Emoji.Annotations(directory: annotations)
        let entries = try Emoji.readTestFile(emojiTest)
        let trainDirectory = (out as NSString).appendingPathComponent("train")
        let validationDirectory = (out as NSString).appendingPathComponent("validation")
        try makeOutputDirectory(trainDirectory)
        try makeOutputDirectory(validationDirectory)
        var written = (train: 0, validation: 0), missing = [String]()
        for entry in entries {
            guard let glyph = emojiFont.glyph(for: entry.scalars), let bitmap = try emojiFont.bitmap(glyph: glyph) else {
                missing.append(entry.name)
                continue
            }
            let validation = Emoji.isValidation(entry.scalars)
            try writePair(Emoji.picture(from: bitmap, size: size), captions: Emoji.captions(for: entry, annotations: notes),
                          name: entry.fileName, in: validation ? validationDirectory : trainDirectory)
            if validation { written.validation += 1 } else { written.train += 1 }
        }
        let seconds = Date().timeIntervalSince(start)
        print("wrote \(written.train + written.validation) emoji at \(size) px in \(String(format: "%.1f", seconds)) s: "
              + "\(written.train) in \(trainDirectory), \(written.validation) in \(validationDirectory)")
        if !missing.isEmpty {
            print("\(missing.count) emoji of \(emojiTest) have no glyph in the font, e.g. \(missing.prefix(3).joined(separator: ", "))")
        }
    }
}
