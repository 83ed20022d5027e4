// Resampling, one axis at a time: an area (box) filter when an axis shrinks — each output pixel
// is the exact area-weighted mean of the input it covers — and bilinear interpolation with
// pixel centres aligned when it grows.

extension Image {
    /// This image resampled to width × height (same channels), rounded to the nearest value.
    public func resized(width newWidth: Int, height newHeight: Int) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "resize to \(newWidth)×\(newHeight)")
        if newWidth == width && newHeight == height { return self }
        let horizontal = resamplingWeights(from: width, to: newWidth)
        let vertical = resamplingWeights(from: height, to: newHeight)
        // (H, W', C): rows first
        var wide = [Float](repeating: 0, count: height * newWidth * channels)
        for y in 0..<height {
            for (x, taps) in horizontal.enumerated() {
                for (source, weight) in taps {
                    for c in 0..<channels {
                        wide[(y * newWidth + x) * channels + c] += weight * Float(pixels[(y * width + source) * channels + c])
                    }
                }
            }
        }
        // (H', W', C)
        var out = [UInt8](repeating: 0, count: newHeight * newWidth * channels)
        for (y, taps) in vertical.enumerated() {
            for i in 0..<(newWidth * channels) {
                var value: Float = 0
                for (source, weight) in taps { value += weight * wide[source * newWidth * channels + i] }
                out[y * newWidth * channels + i] = UInt8(max(0, min(255, value.rounded())))
            }
        }
        return Image(width: newWidth, height: newHeight, channels: channels, pixels: out)
    }
}

/// For each output index, the input indices it reads and their weights (summing to 1).
func resamplingWeights(from inCount: Int, to outCount: Int) -> [[(Int, Float)]] {
    let ratio = Double(inCount) / Double(outCount)
    return (0..<outCount).map { i in
        if outCount <= inCount {  // area: output pixel i covers [i·ratio, (i+1)·ratio) of the input
            let start = Double(i) * ratio, end = Double(i + 1) * ratio
            var taps = [(Int, Float)]()
            var j = Int(start)
            while Double(j) < end && j < inCount {
                let overlap = min(end, Double(j + 1)) - max(start, Double(j))
                if overlap > 0 { taps.append((j, Float(overlap / ratio))) }
                j += 1
            }
            return taps
        }
        // bilinear: the input position of output pixel i's centre, clamped to the edge pixels
        let position = min(Double(inCount - 1), max(0, (Double(i) + 0.5) * ratio - 0.5))
        let left = Int(position), fraction = Float(position - Double(left))
        if left + 1 >= inCount || fraction == 0 { return [(left, 1)] }
        return [(left, 1 - fraction), (left + 1, fraction)]
    }
}
