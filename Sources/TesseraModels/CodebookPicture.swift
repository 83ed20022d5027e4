// The picture of a codebook (DESIGN.md, Vocab/NAME/codebook.png): every code's decoded patch.
// A code is drawn as the decoder renders it inside a grid filled with that code, so the patch
// shows the code itself rather than the decoder's border padding; patches are enlarged with
// nearest-neighbour zoom and laid out in code order, row by row.
import TesseraData
import TesseraImage
import TesseraTensor

extension Autoencoder {
    public func codebookPicture(zoom: Int = 4, columns: Int = 32) -> Image {
        let side = config.gridSize, patch = config.downsampling, size = config.imageSize
        let codes = config.codebookSize, chunk = 32
        var patches: [Image] = []
        for first in stride(from: 0, to: codes, by: chunk) {
            let batch = min(chunk, codes - first)
            let tokens = (0..<batch).flatMap { b in [Int32](repeating: Int32(first + b), count: side * side) }
            let drawn = pictures(tokens: tokens, batch: batch)  // (B, 3, H, W)
            for b in 0..<batch {
                let picture = imageFromPlanar(drawn.data + b * 3 * size * size, width: size, height: size)
                let origin = (side / 2) * patch  // the middle cell
                var zoomed = Image(width: patch * zoom, height: patch * zoom, color: [0, 0, 0])
                for y in 0..<(patch * zoom) {
                    for x in 0..<(patch * zoom) {
                        zoomed.set(x: x, y: y, to: Array(picture[origin + x / zoom, origin + y / zoom]))
                    }
                }
                patches.append(zoomed)
            }
        }
        return ContactSheet.make(patches, columns: columns, padding: 1, background: [128, 128, 128])
    }
}
