// Dataset folders (DESIGN.md): NAME.png beside NAME.txt, the text holding one or more captions,
// one per line. The batch loader shuffles with a seeded generator per epoch and picks one of an
// item's captions at random; no horizontal flips, because captions say left and right.
import Foundation
import TesseraImage
import TesseraTensor
import TesseraText

public struct FolderDataset: Sendable {
    public struct Item: Equatable, Sendable {
        /// The shared file name without extension.
        public var name: String
        /// Normalised, non-empty captions.
        public var captions: [String]
    }

    public let directory: String
    /// In name order.
    public let items: [Item]

    /// Scans `directory`; every PNG needs its caption file and every caption file its PNG.
    public init(directory: String) throws {
        self.directory = directory
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw TesseraError("not a readable dataset folder", path: directory)
        }
        let pictures = Set(names.filter { $0.hasSuffix(".png") }.map { String($0.dropLast(4)) })
        let texts = Set(names.filter { $0.hasSuffix(".txt") }.map { String($0.dropLast(4)) })
        if let lonely = pictures.subtracting(texts).min() {
            throw TesseraError("has no caption file \(lonely).txt", path: path(lonely + ".png", in: directory))
        }
        if let lonely = texts.subtracting(pictures).min() {
            throw TesseraError("has no picture \(lonely).png", path: path(lonely + ".txt", in: directory))
        }
        var items = [Item]()
        for name in pictures.sorted() {
            let file = path(name + ".txt", in: directory)
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw TesseraError("unreadable or not UTF-8", path: file)
            }
            let captions = text.split(whereSeparator: \.isNewline).map { normalizeCaption(String($0)) }.filter { !$0.isEmpty }
            guard !captions.isEmpty else { throw TesseraError("holds no caption", path: file) }
            items.append(Item(name: name, captions: captions))
        }
        guard !items.isEmpty else { throw TesseraError("holds no NAME.png + NAME.txt pairs", path: directory) }
        self.items = items
    }

    /// Every caption of every item, in item order.
    public var allCaptions: [String] { items.flatMap(\.captions) }

    /// The picture of item `index` as RGB (alpha composited on white).
    public func image(at index: Int) throws -> Image {
        try Image(contentsOfPNG: path(items[index].name + ".png", in: directory))
    }
}

func path(_ name: String, in directory: String) -> String { (directory as NSString).appendingPathComponent(name) }

/// Batches of (pictures, captions) from a folder, every picture loaded once and resized to
/// `imageSize`. The order of epoch e and each caption choice follow from (seed, epoch, position)
/// alone, so a loader restored to the same epoch and position continues exactly.
public struct BatchLoader: Sendable {
    public struct Batch: Sendable {
        /// (B, 3, H, W), values in [−1, 1]
        public var pixels: [Float]
        public var captions: [String]
        /// Dataset item indices.
        public var indices: [Int]
    }

    public let dataset: FolderDataset
    public let batchSize: Int
    public let imageSize: Int
    public let seed: UInt64
    public private(set) var epoch = 0
    public private(set) var position = 0
    private var order: [Int]
    private let pictures: [[Float]]  // per item, (3, H, W)

    public init(dataset: FolderDataset, batchSize: Int, imageSize: Int, seed: UInt64) throws {
        precondition(batchSize > 0 && imageSize > 0, "BatchLoader: batch \(batchSize), size \(imageSize)")
        self.dataset = dataset
        self.batchSize = batchSize
        self.imageSize = imageSize
        self.seed = seed
        pictures = try dataset.items.indices.map { index in
            planarPixels(try dataset.image(at: index).resized(width: imageSize, height: imageSize))
        }
        order = BatchLoader.order(count: dataset.items.count, seed: seed, epoch: 0)
    }

    /// Moves to `position` of `epoch` (for resuming a training run).
    public mutating func restore(epoch: Int, position: Int) {
        self.epoch = epoch
        self.position = min(max(0, position), dataset.items.count)
        order = BatchLoader.order(count: dataset.items.count, seed: seed, epoch: epoch)
    }

    /// The next `batchSize` items; an epoch's last partial batch is completed from the next epoch.
    public mutating func next() -> Batch {
        var batch = Batch(pixels: [], captions: [], indices: [])
        batch.pixels.reserveCapacity(batchSize * 3 * imageSize * imageSize)
        while batch.indices.count < batchSize {
            if position == order.count { restore(epoch: epoch + 1, position: 0) }
            let index = order[position]
            var choice = RandomGenerator(seed: seed ^ UInt64(epoch) << 40 ^ UInt64(position) ^ 0xC0FFEE)
            let captions = dataset.items[index].captions
            batch.captions.append(captions[choice.int(below: captions.count)])
            batch.pixels += pictures[index]
            batch.indices.append(index)
            position += 1
        }
        return batch
    }

    static func order(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        var order = Array(0..<count)
        rng.shuffle(&order)
        return order
    }
}

/// (3, H, W) floats in [−1, 1] from an RGB image.
public func planarPixels(_ image: Image) -> [Float] {
    let plane = image.width * image.height
    var out = [Float](repeating: 0, count: 3 * plane)
    for p in 0..<plane {
        for c in 0..<3 { out[c * plane + p] = Float(image.pixels[p * image.channels + c]) / 127.5 - 1 }
    }
    return out
}

/// An RGB image from (3, H, W) floats in [−1, 1], clamped and rounded to 8 bits.
public func imageFromPlanar(_ planar: UnsafePointer<Float>, width: Int, height: Int) -> Image {
    let plane = width * height
    var pixels = [UInt8](repeating: 0, count: 3 * plane)
    for p in 0..<plane {
        for c in 0..<3 {
            let value = (planar[c * plane + p] + 1) * 127.5
            pixels[p * 3 + c] = value.isNaN ? 0 : UInt8(min(255, max(0, value.rounded())))
        }
    }
    return Image(width: width, height: height, channels: 3, pixels: pixels)
}
