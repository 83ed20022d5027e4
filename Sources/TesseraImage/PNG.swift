// PNG in and out through libpng's simplified API (png_image_*, libpng 1.6): every colour type,
// bit depth, palette and tRNS is converted by libpng to 8-bit sRGB RGBA; alpha is then
// composited here over white unless the caller keeps it. Writes go through AtomicFile.
import CPNG
import Foundation
import TesseraTensor

extension Image {
    /// Files above this size are refused before they are read.
    public static let maximumFileBytes = 256 << 20
    /// Images above this many pixels are refused before their pixels are allocated.
    public static let maximumPixels = 1 << 26

    /// Reads a PNG file as RGB composited over white, or as RGBA when `keepAlpha`.
    public init(contentsOfPNG path: String, keepAlpha: Bool = false) throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw TesseraError("no such file", path: path)
        }
        if let size = attributes[.size] as? Int, size > Image.maximumFileBytes {
            throw TesseraError("PNG of \(size) bytes is larger than the \(Image.maximumFileBytes)-byte limit", path: path)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TesseraError("cannot read the file", path: path)
        }
        try self.init(pngData: data, path: path, keepAlpha: keepAlpha)
    }

    /// Decodes PNG bytes; `path` only names the source in errors.
    public init(pngData data: Data, path: String? = nil, keepAlpha: Bool = false) throws {
        let layout = try PNGLayout(data, path: path)
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let began = data.withUnsafeBytes { bytes in
            png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count)
        }
        guard began != 0 else { throw TesseraError("not a readable PNG (\(pngMessage(image)))", path: path) }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width * height <= Image.maximumPixels else {
            throw TesseraError("PNG of \(width)×\(height) pixels is outside the supported size", path: path)
        }
        let decoded: Image
        if layout.isUntaggedSixteenBit {
            // libpng takes 16-bit samples without gAMA, sRGB or iCCP to be linear light; the
            // programs that write them almost always mean sRGB values, so read them raw (libpng's
            // 16-bit "linear" output, alpha premultiplied) and keep the top eight bits.
            image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA | PNG_FORMAT_FLAG_LINEAR)
            var samples = [UInt16](repeating: 0, count: width * height * 4)
            let finished = samples.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * 4), nil) }
            guard finished != 0 else { throw TesseraError("corrupt PNG (\(pngMessage(image)))", path: path) }
            var rgba = [UInt8](repeating: 0, count: width * height * 4)
            for p in 0..<(width * height) {
                let alpha = UInt32(samples[p * 4 + 3])
                for c in 0..<3 {  // un-premultiply
                    let value = alpha == 0 ? 0 : (UInt32(samples[p * 4 + c]) * 65535 + alpha / 2) / alpha
                    rgba[p * 4 + c] = UInt8((min(65535, value) * 255 + 32767) / 65535)
                }
                rgba[p * 4 + 3] = UInt8((alpha * 255 + 32767) / 65535)
            }
            decoded = Image(width: width, height: height, channels: 4, pixels: rgba)
        } else {
            image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
            var rgba = [UInt8](repeating: 0, count: width * height * 4)
            let finished = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * 4), nil) }
            guard finished != 0 else { throw TesseraError("corrupt PNG (\(pngMessage(image)))", path: path) }
            decoded = Image(width: width, height: height, channels: 4, pixels: rgba)
        }
        self = keepAlpha ? decoded : decoded.flattened()
    }

    /// The PNG encoding of this image (8-bit RGB or RGBA).
    public func pngData() throws -> Data {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(channels == 4 ? PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA : PNG_FORMAT_FLAG_COLOR)
        defer { png_image_free(&image) }
        let stride = Int32(width * channels)
        var size = 0
        let sized = pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, stride, nil) }
        guard sized != 0 || size > 0 else { throw TesseraError("PNG encoding failed (\(pngMessage(image)))") }
        var bytes = [UInt8](repeating: 0, count: size)
        let written = bytes.withUnsafeMutableBytes { out in
            pixels.withUnsafeBytes { png_image_write_to_memory(&image, out.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
        }
        guard written != 0 else { throw TesseraError("PNG encoding failed (\(pngMessage(image)))") }
        return Data(bytes[0..<size])
    }

    /// Writes a PNG file atomically (a temporary sibling, then a rename).
    public func writePNG(to path: String) throws {
        let data: Data
        do { data = try pngData() } catch let error as TesseraError { throw TesseraError(error.problem, path: path) }
        try AtomicFile.write(data, to: path)
    }
}

/// libpng's own one-line explanation of the last failure.
private func pngMessage(_ image: png_image) -> String {
    var message = image.message
    return withUnsafeBytes(of: &message) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return bytes.isEmpty ? "unknown libpng error" : String(decoding: bytes, as: UTF8.self)
    }
}

/// What a walk over the chunks tells before libpng decodes: that the stream is whole (every
/// chunk inside the data, ending in IEND), its bit depth, and whether it states a colour space.
private struct PNGLayout {
    var isUntaggedSixteenBit = false

    init(_ data: Data, path: String?) throws {
        let bytes = [UInt8](data)
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw TesseraError("not a PNG file (bad signature)", path: path)
        }
        var offset = 8, bitDepth = 0, tagged = false, ended = false
        while offset + 12 <= bytes.count {
            let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            guard length <= bytes.count - offset - 12 else { break }
            if type == "IHDR" && length >= 9 { bitDepth = Int(bytes[offset + 16]) }
            if ["gAMA", "sRGB", "iCCP"].contains(type) { tagged = true }
            offset += 12 + length
            if type == "IEND" { ended = true; break }
        }
        guard ended else { throw TesseraError("truncated PNG (the data ends before its IEND chunk)", path: path) }
        isUntaggedSixteenBit = bitDepth == 16 && !tagged
    }
}
