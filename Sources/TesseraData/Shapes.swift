// Shapes v1 (../shared/SHAPES.md): 64×64 pictures of one or two coloured shapes on a 3×3 grid,
// with captions from a fixed grammar, in three splits that hold four colour–shape pairs out of
// training. Every scene follows from (seed, split, index) alone; rendering is exact 4×
// supersampling with a box filter, in Double arithmetic that is the same on every machine.
import TesseraImage
import TesseraTensor

public enum Shapes {
    public static let canvasSide = 64
    static let supersampling = 4

    public enum Color: Int, CaseIterable, Sendable {
        case red, green, blue, yellow, purple, orange
        public var name: String { ["red", "green", "blue", "yellow", "purple", "orange"][rawValue] }
        public var rgb: [UInt8] {
            [[220, 40, 40], [40, 170, 60], [40, 80, 220], [240, 200, 30], [140, 60, 180], [245, 130, 30]][rawValue]
        }
    }

    public enum Shape: Int, CaseIterable, Sendable {
        case circle, square, triangle, diamond
        public var name: String { ["circle", "square", "triangle", "diamond"][rawValue] }
    }

    public enum Size: Int, CaseIterable, Sendable {
        case small, large
        public var name: String { ["small", "large"][rawValue] }
        /// Side of the shape's box in pixels.
        public var side: Double { self == .small ? 10 : 16 }
    }

    /// The 3×3 grid cell, 0...8 in reading order (row · 3 + column).
    public static let positionPhrases = [
        "in the top left", "at the top", "in the top right",
        "on the left", "in the center", "on the right",
        "in the bottom left", "at the bottom", "in the bottom right",
    ]

    /// The colour–shape pairs no training image contains.
    public static let heldOutPairs: Set<ColorShape> = [
        ColorShape(.purple, .triangle), ColorShape(.green, .circle),
        ColorShape(.orange, .square), ColorShape(.yellow, .diamond),
    ]

    public struct ColorShape: Hashable, Sendable {
        public let color: Color
        public let shape: Shape
        public init(_ color: Color, _ shape: Shape) { self.color = color; self.shape = shape }
    }

    /// What a caption says about one object, and what the checker reads back.
    public struct Object: Hashable, Sendable {
        public var size: Size
        public var color: Color
        public var shape: Shape
        public var cell: Int
        public init(size: Size, color: Color, shape: Shape, cell: Int) {
            self.size = size; self.color = color; self.shape = shape; self.cell = cell
        }
        public var phrase: String { "a \(size.name) \(color.name) \(shape.name) \(Shapes.positionPhrases[cell])" }
        public var isHeldOut: Bool { Shapes.heldOutPairs.contains(ColorShape(color, shape)) }
    }

    /// An object and where exactly its box is centred (the cell centre plus jitter).
    public struct PlacedObject: Equatable, Sendable {
        public var object: Object
        public var centerX: Double
        public var centerY: Double
        public init(object: Object, centerX: Double, centerY: Double) {
            self.object = object; self.centerX = centerX; self.centerY = centerY
        }
    }

    public enum Split: String, CaseIterable, Sendable {
        case train, testSeen = "test-seen", testNovel = "test-novel"
    }

    public struct Scene: Equatable, Sendable {
        /// In reading order of their cells.
        public var objects: [PlacedObject]
        public var blackBackground: Bool
        public init(objects: [PlacedObject], blackBackground: Bool) {
            self.objects = objects; self.blackBackground = blackBackground
        }
        public var caption: String { Shapes.caption(objects.map(\.object), blackBackground: blackBackground) }
    }

    /// The caption grammar: object phrases in reading order joined by " and ", then the
    /// background when it is black.
    public static func caption(_ objects: [Object], blackBackground: Bool) -> String {
        let phrases = objects.sorted { $0.cell < $1.cell }.map(\.phrase).joined(separator: " and ")
        return blackBackground ? phrases + " on a black background" : phrases
    }

    /// Reads a caption of the grammar back into its objects and background; nil if it is not one.
    public static func parse(caption: String) -> (objects: [Object], blackBackground: Bool)? {
        var text = caption
        let suffix = " on a black background"
        let black = text.hasSuffix(suffix)
        if black { text.removeLast(suffix.count) }
        var objects = [Object]()
        for phrase in text.components(separatedBy: " and ") {
            let words = phrase.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard words.count >= 5, words[0] == "a",
                  let size = Size.allCases.first(where: { $0.name == words[1] }),
                  let color = Color.allCases.first(where: { $0.name == words[2] }),
                  let shape = Shape.allCases.first(where: { $0.name == words[3] }),
                  let cell = positionPhrases.firstIndex(of: words[4...].joined(separator: " "))
            else { return nil }
            objects.append(Object(size: size, color: color, shape: shape, cell: cell))
        }
        guard (1...2).contains(objects.count), Set(objects.map(\.cell)).count == objects.count,
              caption == Shapes.caption(objects, blackBackground: black) else { return nil }
        return (objects, black)
    }

    /// The scene at `index` of `split` for `seed`: uniform choices, redrawn until the scene
    /// belongs to the split (no held-out pair in train and test-seen, at least one in test-novel).
    public static func scene(seed: UInt64, split: Split, index: Int) -> Scene {
        let splitNumber = UInt64(Split.allCases.firstIndex(of: split)! + 1)
        // Each of seed, split and index passes through a seeded generator in turn, so nearby
        // values of any of them give unrelated streams.
        var seedStream = RandomGenerator(seed: seed)
        var splitStream = RandomGenerator(seed: seedStream.next() ^ splitNumber)
        var rng = RandomGenerator(seed: splitStream.next() ^ UInt64(truncatingIfNeeded: index))
        while true {
            let blackBackground = rng.int(below: 4) == 0
            let count = 1 + rng.int(below: 2)
            var cells = Array(0..<9)
            var objects = [PlacedObject]()
            for _ in 0..<count {
                let cell = cells.remove(at: rng.int(below: cells.count))
                let object = Object(size: Size(rawValue: rng.int(below: 2))!, color: Color(rawValue: rng.int(below: 6))!,
                                    shape: Shape(rawValue: rng.int(below: 4))!, cell: cell)
                let jitterX = rng.uniformDouble() * 3 - 1.5, jitterY = rng.uniformDouble() * 3 - 1.5
                objects.append(PlacedObject(object: object, centerX: cellCenter(cell % 3) + jitterX,
                                            centerY: cellCenter(cell / 3) + jitterY))
            }
            let novel = objects.contains { $0.object.isHeldOut }
            if novel == (split == .testNovel) {
                objects.sort { $0.object.cell < $1.object.cell }
                return Scene(objects: objects, blackBackground: blackBackground)
            }
        }
    }

    /// A picture of what a caption of the grammar says, each object jittered within its cell
    /// as the dataset's are (from a generator seeded with `seed`); nil if it is not a caption
    /// of the grammar. The real picture an FID reference needs for a prompt.
    public static func picture(caption: String, seed: UInt64) -> Image? {
        guard let parsed = parse(caption: caption) else { return nil }
        var rng = RandomGenerator(seed: seed)
        let objects = parsed.objects.map { object in
            let jitterX = rng.uniformDouble() * 3 - 1.5, jitterY = rng.uniformDouble() * 3 - 1.5
            return PlacedObject(object: object, centerX: cellCenter(object.cell % 3) + jitterX,
                                centerY: cellCenter(object.cell / 3) + jitterY)
        }
        return render(Scene(objects: objects, blackBackground: parsed.blackBackground))
    }

    /// Centre of grid column (or row) `index`: 64·(2i+1)/6.
    static func cellCenter(_ index: Int) -> Double { Double(canvasSide) * Double(2 * index + 1) / 6 }

    /// Renders at 4× with hard edges (a sub-pixel is inside when its centre satisfies the
    /// shape's inequality, boundary included), then averages each 4×4 block, rounding half up.
    /// Neighbouring boxes are at least 21.33 − 16 − 3 = 2.33 px apart, so objects never touch.
    public static func render(_ scene: Scene) -> Image {
        let n = canvasSide, f = supersampling
        let background: [Int] = scene.blackBackground ? [0, 0, 0] : [255, 255, 255]
        let colors = scene.objects.map { $0.object.color.rgb.map(Int.init) }
        var pixels = [UInt8](repeating: 0, count: n * n * 3)
        for y in 0..<n {
            for x in 0..<n {
                var red = 0, green = 0, blue = 0
                for sy in 0..<f {
                    for sx in 0..<f {
                        let px = (Double(x * f + sx) + 0.5) / Double(f)
                        let py = (Double(y * f + sy) + 0.5) / Double(f)
                        let covering = scene.objects.firstIndex { contains($0, px, py) }
                        let color = covering.map { colors[$0] } ?? background
                        red += color[0]; green += color[1]; blue += color[2]
                    }
                }
                let base = (y * n + x) * 3, half = f * f / 2
                pixels[base] = UInt8((red + half) / (f * f))
                pixels[base + 1] = UInt8((green + half) / (f * f))
                pixels[base + 2] = UInt8((blue + half) / (f * f))
            }
        }
        return Image(width: n, height: n, channels: 3, pixels: pixels)
    }

    /// Whether the point (px, py) of the 64-pixel canvas lies in the object.
    static func contains(_ placed: PlacedObject, _ px: Double, _ py: Double) -> Bool {
        let r = placed.object.size.side / 2
        let dx = px - placed.centerX, dy = py - placed.centerY
        switch placed.object.shape {
        case .circle: return dx * dx + dy * dy <= r * r
        case .square: return abs(dx) <= r && abs(dy) <= r
        case .diamond: return abs(dx) + abs(dy) <= r
        case .triangle:  // apex at the top middle, base along the bottom edge
            let depth = dy + r
            return depth >= 0 && dy <= r && abs(dx) <= depth / 2
        }
    }
}
