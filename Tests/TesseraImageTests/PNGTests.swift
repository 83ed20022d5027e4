// PNG reading through libpng for every colour type and depth, written here by a minimal encoder
// that knows nothing of libpng; round trips; and errors for truncated and corrupt files.
import CPNG
import Foundation
import Testing
import TesseraImage

/// A minimal PNG encoder: IHDR, optional PLTE and tRNS, one IDAT of filter-0 rows, IEND.
func encodePNG(width: Int, height: Int, bitDepth: Int, colorType: Int, rows: [[UInt8]],
               palette: [UInt8]? = nil, transparency: [UInt8]? = nil) -> Data {
    func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + body
        let crc = typed.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        return bigEndian(UInt32(body.count)) + typed + bigEndian(crc)
    }
    func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
    var raw = [UInt8]()
    for row in rows { raw.append(0); raw.append(contentsOf: row) }
    var compressedSize = compressBound(UInt(raw.count))
    var compressed = [UInt8](repeating: 0, count: Int(compressedSize))
    _ = compress(&compressed, &compressedSize, raw, UInt(raw.count))
    var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    bytes += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [UInt8(bitDepth), UInt8(colorType), 0, 0, 0])
    if let palette { bytes += chunk("PLTE", palette) }
    if let transparency { bytes += chunk("tRNS", transparency) }
    bytes += chunk("IDAT", Array(compressed.prefix(Int(compressedSize))))
    bytes += chunk("IEND", [])
    return Data(bytes)
}

@Suite struct PNGReading {
    @Test func grayIsSpreadToThreeChannels() throws {
        let data = encodePNG(width: 2, height: 1, bitDepth: 8, colorType: 0, rows: [[0, 200]])
        let image = try Image(pngData: data)
        #expect(image.channels == 3 && image.pixels == [0, 0, 0, 200, 200, 200])
    }

    @Test func grayAlphaIsCompositedOnWhite() throws {
        let data = encodePNG(width: 3, height: 1, bitDepth: 8, colorType: 4, rows: [[0, 255, 0, 0, 100, 128]])
        let image = try Image(pngData: data)
        // opaque black; transparent → white; half-covered gray 100 → (100·128 + 255·127) / 255
        #expect(image.pixels == [0, 0, 0, 255, 255, 255, 177, 177, 177])
        let kept = try Image(pngData: data, keepAlpha: true)
        #expect(kept.channels == 4 && kept.pixels[3] == 255 && kept.pixels[7] == 0)
    }

    @Test func rgbAndRGBAKeepTheirValues() throws {
        let rgb = encodePNG(width: 2, height: 2, bitDepth: 8, colorType: 2,
                            rows: [[1, 2, 3, 4, 5, 6], [7, 8, 9, 250, 251, 252]])
        #expect(try Image(pngData: rgb).pixels == [1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252])
        let rgba = encodePNG(width: 2, height: 1, bitDepth: 8, colorType: 6, rows: [[10, 20, 30, 255, 99, 99, 99, 0]])
        #expect(try Image(pngData: rgba).pixels == [10, 20, 30, 255, 255, 255])
        #expect(try Image(pngData: rgba, keepAlpha: true).pixels == [10, 20, 30, 255, 99, 99, 99, 0])
    }

    @Test func paletteWithTransparency() throws {
        // 2-bit palette indices 0, 1, 2 → red, green, and a fully transparent third entry
        let data = encodePNG(width: 3, height: 1, bitDepth: 2, colorType: 3, rows: [[0b0001_1000]],
                             palette: [255, 0, 0, 0, 255, 0, 0, 0, 255], transparency: [255, 255, 0])
        #expect(try Image(pngData: data).pixels == [255, 0, 0, 0, 255, 0, 255, 255, 255])
    }

    @Test func sixteenBitIsReducedToEightBit() throws {
        let data = encodePNG(width: 2, height: 1, bitDepth: 16, colorType: 2,
                             rows: [[0xFF, 0xFF, 0x00, 0x00, 0x80, 0x80, 0x12, 0x34, 0x00, 0x00, 0xFF, 0xFF]])
        let image = try Image(pngData: data)
        #expect(image.pixels[0] == 255 && image.pixels[1] == 0 && image.pixels[5] == 255)
        #expect(image.pixels == [255, 0, 128, 18, 0, 255])
        // with alpha: 16-bit gray+alpha, half-covered mid gray over white
        let gray = encodePNG(width: 1, height: 1, bitDepth: 16, colorType: 4, rows: [[0x80, 0x00, 0x80, 0x00]])
        #expect(try Image(pngData: gray).pixels == [191, 191, 191])
    }

    @Test func roundTripsRGBAndRGBA() throws {
        var state: UInt32 = 12345
        func byte() -> UInt8 { state = state &* 1_664_525 &+ 1_013_904_223; return UInt8(state >> 24) }
        for channels in [3, 4] {
            let image = Image(width: 7, height: 5, channels: channels, pixels: (0..<(7 * 5 * channels)).map { _ in byte() })
            let back = try Image(pngData: try image.pngData(), keepAlpha: channels == 4)
            #expect(back == image)
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-png-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("x.png").path
        let image = Image(width: 3, height: 2, color: [9, 8, 7])
        try image.writePNG(to: path)
        #expect(try Image(contentsOfPNG: path) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["x.png"])
    }

    @Test func truncatedAndCorruptFilesAreErrors() throws {
        let good = try Image(width: 16, height: 16, color: [1, 2, 3]).pngData()
        for cut in [0, 7, 20, 40, good.count - 20, good.count - 5] {
            #expect(throws: (any Error).self, "cut at \(cut)") { try Image(pngData: good.prefix(cut), path: "cut.png") }
        }
        var flipped = good
        flipped[good.count / 2] ^= 0xFF  // inside the compressed data: CRC mismatch
        let error = #expect(throws: (any Error).self) { try Image(pngData: flipped, path: "bad.png") }
        #expect("\(error!)".hasPrefix("bad.png: "))
        #expect(throws: (any Error).self) { try Image(pngData: Data("not a png at all".utf8)) }
        #expect(throws: (any Error).self) { try Image(contentsOfPNG: "/nonexistent/x.png") }
    }
}

@Suite struct Resampling {
    @Test func areaFilterAveragesBlocks() {
        let image = Image(width: 4, height: 2, channels: 3, pixels: [
            0, 0, 0, 100, 100, 100, 10, 20, 30, 30, 40, 50,
            0, 0, 0, 100, 100, 100, 10, 20, 30, 30, 40, 50,
        ])
        #expect(image.resized(width: 2, height: 1).pixels == [50, 50, 50, 20, 30, 40])
        // a 3 → 2 shrink weighs the middle pixel half to each side
        let row = Image(width: 3, height: 1, channels: 3, pixels: [0, 0, 0, 90, 90, 90, 180, 180, 180])
        #expect(row.resized(width: 2, height: 1).pixels == [30, 30, 30, 150, 150, 150])
    }

    @Test func bilinearUpscaleInterpolatesBetweenCentres() {
        let row = Image(width: 2, height: 1, channels: 3, pixels: [0, 0, 0, 200, 200, 200])
        // output centres at input positions −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped)
        #expect(row.resized(width: 4, height: 1).pixels == [0, 0, 0, 50, 50, 50, 150, 150, 150, 200, 200, 200])
    }
}

@Suite struct Drawing {
    @Test func contactSheetPlacesPicturesAndCaptions() {
        let red = Image(width: 10, height: 10, color: [255, 0, 0]), blue = Image(width: 10, height: 10, color: [0, 0, 255])
        let sheet = ContactSheet.make([red, blue, red], captions: ["a", "bb", "c"], columns: 2, padding: 2)
        #expect(sheet.width == 2 + 2 * (10 + 2))
        #expect(Array(sheet[2, 2]) == [255, 0, 0] && Array(sheet[14, 2]) == [0, 0, 255])
        #expect(Array(sheet[1, 1]) == [255, 255, 255])
        // some ink under the first picture, where the caption "a" is drawn
        let inked = (12..<21).contains { y in (2..<8).contains { x in sheet[x, y].allSatisfy { $0 == 0 } } }
        #expect(inked)
    }

    @Test func wrapBreaksAtWordsAndMarksCuts() {
        #expect(BitmapFont.wrap("a small red circle", width: 48, maximumLines: 3) == ["a small", "red", "circle"])
        #expect(BitmapFont.wrap("one two three four", width: 30, maximumLines: 2) == ["one", "tw..."])
    }

    /// Emoji names hold accents and typographic quotes; the font draws their ASCII kin.
    @Test func foldingKeepsNamesReadable() {
        #expect(BitmapFont.folded("japanese \u{201C}reserved\u{201D} button") == "japanese \"reserved\" button")
        #expect(BitmapFont.folded("pi\u{F1}ata, flag: r\u{E9}union \u{2013} 1\u{2026}") == "pinata, flag: reunion - 1...")
        #expect(BitmapFont.folded("\u{4E2D} \u{1F600}") == "? ?")
        #expect(BitmapFont.wrap("caf\u{E9} \u{2018}x\u{2019}", width: 60, maximumLines: 1) == ["cafe 'x'"])
    }

    @Test func terminalPreviewUsesHalfBlocks() {
        let image = Image(width: 2, height: 2, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3])
        let text = TerminalPreview.render(image, columns: 2, rows: 1)
        #expect(text == "\u{1B}[38;2;255;0;0m\u{1B}[48;2;0;0;255m▀\u{1B}[38;2;0;255;0m\u{1B}[48;2;1;2;3m▀\u{1B}[0m\n")
    }
}
