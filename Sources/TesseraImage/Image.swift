// The picture type every part of Tessera passes around: 8-bit, row-major, channels interleaved,
// row 0 at the top. RGB for everything the models see; RGBA only when a caller asks for alpha.

public struct Image: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// 3 (RGB) or 4 (RGBA, straight alpha).
    public let channels: Int
    /// (H, W, channels)
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int = 3, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (channels == 3 || channels == 4),
                     "Image \(width)×\(height)×\(channels)")
        precondition(pixels.count == width * height * channels,
                     "Image \(width)×\(height)×\(channels) needs \(width * height * channels) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A canvas of one colour (RGB, or RGBA when `color` has four values).
    public init(width: Int, height: Int, color: [UInt8]) {
        precondition(color.count == 3 || color.count == 4, "Image fill colour needs 3 or 4 values, got \(color.count)")
        var pixels = [UInt8]()
        pixels.reserveCapacity(width * height * color.count)
        for _ in 0..<(width * height) { pixels.append(contentsOf: color) }
        self.init(width: width, height: height, channels: color.count, pixels: pixels)
    }

    /// The channel values of pixel (x, y).
    public subscript(x: Int, y: Int) -> ArraySlice<UInt8> {
        let start = (y * width + x) * channels
        return pixels[start..<(start + channels)]
    }

    /// Sets pixel (x, y) to `color`, which has `channels` values.
    public mutating func set(x: Int, y: Int, to color: [UInt8]) {
        let start = (y * width + x) * channels
        for c in 0..<channels { pixels[start + c] = color[c] }
    }

    /// This image composited over a solid colour (straight alpha, in sRGB values), as RGB.
    public func flattened(over background: (UInt8, UInt8, UInt8) = (255, 255, 255)) -> Image {
        if channels == 3 { return self }
        let back = [Int(background.0), Int(background.1), Int(background.2)]
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            let alpha = Int(pixels[p * 4 + 3])
            for c in 0..<3 {
                let blended = Int(pixels[p * 4 + c]) * alpha + back[c] * (255 - alpha)
                out[p * 3 + c] = UInt8((blended + 127) / 255)
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// This image with every pixel repeated factor × factor times (nearest neighbour).
    public func zoomed(by factor: Int) -> Image {
        precondition(factor >= 1, "zoom by \(factor)")
        if factor == 1 { return self }
        var out = [UInt8](repeating: 0, count: width * height * channels * factor * factor)
        let rowBytes = width * factor * channels
        for y in 0..<height * factor {
            for x in 0..<width * factor {
                let source = ((y / factor) * width + x / factor) * channels
                for c in 0..<channels { out[y * rowBytes + x * channels + c] = pixels[source + c] }
            }
        }
        return Image(width: width * factor, height: height * factor, channels: channels, pixels: out)
    }

    /// Copies `other` (same channel count) with its top-left corner at (x, y), clipped to this image.
    public mutating func paste(_ other: Image, x: Int, y: Int) {
        precondition(other.channels == channels, "paste: \(other.channels) channels into \(channels)")
        for row in max(0, -y)..<other.height where y + row < height {
            let columns = max(0, -x)..<min(other.width, width - x)
            if columns.isEmpty { continue }
            let source = (row * other.width + columns.lowerBound) * channels
            let target = ((y + row) * width + x + columns.lowerBound) * channels
            pixels.replaceSubrange(target..<(target + columns.count * channels),
                                   with: other.pixels[source..<(source + columns.count * channels)])
        }
    }
}
