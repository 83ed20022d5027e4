// Colour bitmaps out of an OpenType emoji font (Noto Color Emoji) with no font library: the sfnt
// table directory, `cmap` format 12 (code point → glyph), `GSUB` lookup type 4 ligatures (a
// sequence of glyphs → one glyph, for ZWJ sequences, flags, keycaps, skin tones) and the
// `CBLC`/`CBDT` colour bitmap tables whose glyphs are PNG images (formats 17, 18, 19).
// Specification: OpenType 1.9, https://learn.microsoft.com/typography/opentype/spec/ .
// Every offset is checked against the file, so a corrupt font is an error, never a trap.
import Foundation
import TesseraImage
import TesseraTensor

/// Big-endian reads that throw instead of reading past the end.
struct FontBytes: Sendable {
    let bytes: [UInt8]
    let path: String

    func check(_ offset: Int, _ count: Int, _ what: String) throws {
        guard offset >= 0, count >= 0, offset <= bytes.count - count else {
            throw TesseraError("corrupt font: \(what) at offset \(offset) runs past the end of the file", path: path)
        }
    }
    func u8(_ offset: Int, _ what: String) throws -> Int { try check(offset, 1, what); return Int(bytes[offset]) }
    func u16(_ offset: Int, _ what: String) throws -> Int {
        try check(offset, 2, what)
        return Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
    }
    func u32(_ offset: Int, _ what: String) throws -> Int {
        try check(offset, 4, what)
        return (0..<4).reduce(0) { $0 << 8 | Int(bytes[offset + $1]) }
    }
    func tag(_ offset: Int) throws -> String {
        try check(offset, 4, "table tag")
        return String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self)
    }
}

public struct EmojiFont: Sendable {
    let data: FontBytes
    /// Table tag → offset of the table.
    let tables: [String: Int]
    /// Code point → glyph id, from cmap format 12.
    let glyphForCodePoint: [UInt32: Int]
    /// Ligature lookups in lookup-list order; each maps a first glyph to its ligatures
    /// (the remaining components and the result), in the font's order.
    let ligatureLookups: [[Int: [(components: [Int], glyph: Int)]]]
    /// Glyph id → where its bitmap lies in CBDT and in which format.
    let bitmaps: [Int: (offset: Int, length: Int, format: Int)]

    public init(path: String) throws {
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw TesseraError("missing or unreadable font (install fonts-noto-color-emoji, or pass --font)", path: path)
        }
        let data = FontBytes(bytes: [UInt8](contents), path: path)
        self.data = data
        let tableCount = try data.u16(4, "table count")
        var tables = [String: Int]()
        for i in 0..<tableCount {
            let record = 12 + 16 * i
            let offset = try data.u32(record + 8, "table offset"), length = try data.u32(record + 12, "table length")
            try data.check(offset, length, "table \(try data.tag(record))")
            tables[try data.tag(record)] = offset
        }
        for needed in ["cmap", "CBLC", "CBDT"] where tables[needed] == nil {
            throw TesseraError("not a colour bitmap emoji font: it has no \(needed) table", path: path)
        }
        self.tables = tables
        glyphForCodePoint = try EmojiFont.readCharacterMap(data, at: tables["cmap"]!)
        ligatureLookups = try tables["GSUB"].map { try EmojiFont.readLigatures(data, at: $0) } ?? []
        bitmaps = try EmojiFont.readBitmapLocations(data, locations: tables["CBLC"]!, bitmapData: tables["CBDT"]!)
    }

    /// The glyph drawn for a code point sequence (U+FE0F dropped first), after the font's
    /// ligatures; nil if the font has no single glyph for it.
    public func glyph(for scalars: [Unicode.Scalar]) -> Int? {
        var glyphs = [Int]()
        for scalar in scalars where scalar.value != 0xFE0F {
            guard let glyph = glyphForCodePoint[scalar.value] else { return nil }
            glyphs.append(glyph)
        }
        for lookup in ligatureLookups where glyphs.count > 1 {
            var out = [Int](), i = 0
            while i < glyphs.count {
                let match = lookup[glyphs[i]]?.first { ligature in
                    i + ligature.components.count < glyphs.count
                        && Array(glyphs[(i + 1)...(i + ligature.components.count)]) == ligature.components
                }
                if let match {
                    out.append(match.glyph)
                    i += 1 + match.components.count
                } else {
                    out.append(glyphs[i])
                    i += 1
                }
            }
            glyphs = out
        }
        return glyphs.count == 1 ? glyphs[0] : nil
    }

    /// The colour bitmap of a glyph as RGBA; nil if the glyph has none.
    public func bitmap(glyph: Int) throws -> Image? {
        guard let location = bitmaps[glyph] else { return nil }
        let start = location.offset
        var pngStart: Int, pngLength: Int
        switch location.format {
        case 17: pngLength = try data.u32(start + 5, "glyph data length"); pngStart = start + 9   // small metrics
        case 18: pngLength = try data.u32(start + 8, "glyph data length"); pngStart = start + 12  // big metrics
        case 19: pngLength = try data.u32(start, "glyph data length"); pngStart = start + 4
        default: throw TesseraError("glyph \(glyph) has bitmap format \(location.format), not PNG (17, 18, 19)", path: data.path)
        }
        try data.check(pngStart, pngLength, "PNG of glyph \(glyph)")
        guard pngStart + pngLength <= start + location.length else {
            throw TesseraError("corrupt font: PNG of glyph \(glyph) is longer than its bitmap record", path: data.path)
        }
        return try Image(pngData: Data(data.bytes[pngStart..<(pngStart + pngLength)]),
                         path: "\(data.path) glyph \(glyph)", keepAlpha: true)
    }

    // MARK: Tables

    static func readCharacterMap(_ data: FontBytes, at cmap: Int) throws -> [UInt32: Int] {
        let count = try data.u16(cmap + 2, "cmap encoding count")
        for i in 0..<count {
            let subtable = cmap + (try data.u32(cmap + 4 + 8 * i + 4, "cmap subtable offset"))
            guard try data.u16(subtable, "cmap subtable format") == 12 else { continue }
            let groups = try data.u32(subtable + 12, "cmap group count")
            try data.check(subtable + 16, groups * 12, "cmap groups")
            var map = [UInt32: Int]()
            for g in 0..<groups {
                let record = subtable + 16 + 12 * g
                let first = try data.u32(record, "cmap group"), last = try data.u32(record + 4, "cmap group")
                let glyph = try data.u32(record + 8, "cmap group")
                guard first <= last, last <= 0x10FFFF else {
                    throw TesseraError("corrupt font: cmap group \(g) spans \(first)...\(last)", path: data.path)
                }
                for (k, code) in (first...last).enumerated() { map[UInt32(code)] = glyph + k }
            }
            return map
        }
        throw TesseraError("the font has no cmap format 12 subtable", path: data.path)
    }

    static func readLigatures(_ data: FontBytes, at gsub: Int) throws -> [[Int: [(components: [Int], glyph: Int)]]] {
        let lookupList = gsub + (try data.u16(gsub + 8, "GSUB lookup list offset"))
        var lookups = [[Int: [(components: [Int], glyph: Int)]]]()
        for l in 0..<(try data.u16(lookupList, "GSUB lookup count")) {
            let lookup = lookupList + (try data.u16(lookupList + 2 + 2 * l, "GSUB lookup offset"))
            var type = try data.u16(lookup, "lookup type")
            var ligatures = [Int: [(components: [Int], glyph: Int)]]()
            for s in 0..<(try data.u16(lookup + 4, "subtable count")) {
                var subtable = lookup + (try data.u16(lookup + 6 + 2 * s, "subtable offset"))
                if type == 7 {  // extension: the real type and a 32-bit offset
                    type = try data.u16(subtable + 2, "extension lookup type")
                    subtable += try data.u32(subtable + 4, "extension offset")
                }
                guard type == 4 else { continue }
                let coverage = try readCoverage(data, at: subtable + (try data.u16(subtable + 2, "coverage offset")))
                let setCount = try data.u16(subtable + 4, "ligature set count")
                guard setCount <= coverage.count else {
                    throw TesseraError("corrupt font: \(setCount) ligature sets for \(coverage.count) covered glyphs", path: data.path)
                }
                for k in 0..<setCount {
                    let set = subtable + (try data.u16(subtable + 6 + 2 * k, "ligature set offset"))
                    for m in 0..<(try data.u16(set, "ligature count")) {
                        let ligature = set + (try data.u16(set + 2 + 2 * m, "ligature offset"))
                        let glyph = try data.u16(ligature, "ligature glyph")
                        let componentCount = try data.u16(ligature + 2, "component count")
                        guard componentCount >= 1 else { continue }
                        let components = try (0..<(componentCount - 1)).map { try data.u16(ligature + 4 + 2 * $0, "component") }
                        ligatures[coverage[k], default: []].append((components, glyph))
                    }
                }
            }
            if !ligatures.isEmpty { lookups.append(ligatures) }
        }
        return lookups
    }

    /// The glyphs of a coverage table, in coverage index order.
    static func readCoverage(_ data: FontBytes, at coverage: Int) throws -> [Int] {
        switch try data.u16(coverage, "coverage format") {
        case 1:
            let count = try data.u16(coverage + 2, "coverage count")
            return try (0..<count).map { try data.u16(coverage + 4 + 2 * $0, "coverage glyph") }
        case 2:
            var glyphs = [Int]()
            for r in 0..<(try data.u16(coverage + 2, "coverage range count")) {
                let first = try data.u16(coverage + 4 + 6 * r, "coverage range"), last = try data.u16(coverage + 6 + 6 * r, "coverage range")
                guard first <= last else { throw TesseraError("corrupt font: coverage range \(first)...\(last)", path: data.path) }
                glyphs += Array(first...last)
            }
            return glyphs
        case let format:
            throw TesseraError("corrupt font: coverage format \(format)", path: data.path)
        }
    }

    /// Bitmap locations of the largest strike (Noto Color Emoji has one, 136×128 at 109 ppem).
    static func readBitmapLocations(_ data: FontBytes, locations cblc: Int, bitmapData cbdt: Int)
        throws -> [Int: (offset: Int, length: Int, format: Int)] {
        let strikeCount = try data.u32(cblc + 4, "CBLC strike count")
        guard strikeCount >= 1 else { throw TesseraError("the CBLC table has no bitmap strike", path: data.path) }
        try data.check(cblc + 8, strikeCount * 48, "CBLC strikes")
        let strikes = (0..<strikeCount).map { cblc + 8 + 48 * $0 }
        let strike = try strikes.max { try data.u8($0 + 45, "ppem") < data.u8($1 + 45, "ppem") }!
        let array = cblc + (try data.u32(strike, "index subtable array offset"))
        var locations = [Int: (offset: Int, length: Int, format: Int)]()
        for i in 0..<(try data.u32(strike + 8, "index subtable count")) {
            let entry = array + 8 * i
            let first = try data.u16(entry, "first glyph"), last = try data.u16(entry + 2, "last glyph")
            guard first <= last else { throw TesseraError("corrupt font: index subtable glyphs \(first)...\(last)", path: data.path) }
            let header = array + (try data.u32(entry + 4, "index subtable offset"))
            let indexFormat = try data.u16(header, "index format"), imageFormat = try data.u16(header + 2, "image format")
            let imageData = cbdt + (try data.u32(header + 4, "image data offset"))
            func add(_ glyph: Int, _ start: Int, _ end: Int) throws {
                guard end >= start else { throw TesseraError("corrupt font: glyph \(glyph) bitmap ends before it starts", path: data.path) }
                try data.check(imageData + start, end - start, "bitmap of glyph \(glyph)")
                if end > start { locations[glyph] = (imageData + start, end - start, imageFormat) }
            }
            switch indexFormat {
            case 1, 3:  // an offset per glyph, plus one past the last (32- or 16-bit)
                let width = indexFormat == 1 ? 4 : 2
                func offset(_ k: Int) throws -> Int {
                    width == 4 ? try data.u32(header + 8 + 4 * k, "bitmap offset") : try data.u16(header + 8 + 2 * k, "bitmap offset")
                }
                for glyph in first...last { try add(glyph, try offset(glyph - first), try offset(glyph - first + 1)) }
            case 2:  // every glyph the same size
                let size = try data.u32(header + 8, "image size")
                for glyph in first...last { try add(glyph, (glyph - first) * size, (glyph - first + 1) * size) }
            case 4:  // sparse: (glyph, offset) pairs
                let count = try data.u32(header + 8, "glyph count")
                for k in 0..<count {
                    let glyph = try data.u16(header + 12 + 4 * k, "glyph id")
                    try add(glyph, try data.u16(header + 14 + 4 * k, "bitmap offset"), try data.u16(header + 18 + 4 * k, "bitmap offset"))
                }
            case 5:  // sparse, every glyph the same size
                let size = try data.u32(header + 8, "image size")
                let count = try data.u32(header + 20, "glyph count")
                for k in 0..<count { try add(try data.u16(header + 24 + 2 * k, "glyph id"), k * size, (k + 1) * size) }
            default:
                throw TesseraError("corrupt font: index subtable format \(indexFormat)", path: data.path)
            }
        }
        return locations
    }
}
