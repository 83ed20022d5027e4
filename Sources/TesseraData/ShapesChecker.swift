// The Shapes v1 checker (../shared/SHAPES.md, "Reading an image back"): finds the background,
// labels pixels by the nearest palette colour, measures each 4-connected component and names
// its shape, size and cell; then compares what it read with what a caption says.
import TesseraImage

extension Shapes {
    /// What the checker read from a picture.
    public struct Reading: Equatable, Sendable {
        public var objects: [Object]
        public var blackBackground: Bool
    }

    /// Reads a 64×64 RGB picture back into objects and a background.
    public static func read(_ image: Image) -> Reading {
        precondition(image.width == canvasSide && image.height == canvasSide && image.channels == 3,
                     "Shapes checker reads 64×64 RGB, got \(image.width)×\(image.height)×\(image.channels)")
        let n = canvasSide, pixels = image.pixels
        func distanceSquared(_ p: Int, _ color: [Int]) -> Int {
            (0..<3).reduce(0) { total, c in
                let d = Int(pixels[p * 3 + c]) - color[c]
                return total + d * d
            }
        }
        // 1. Background: the majority of the 252 border pixels by the nearer of white and black
        //    (a tie counts as white).
        var blackVotes = 0, borderCount = 0
        for y in 0..<n {
            for x in 0..<n where y == 0 || y == n - 1 || x == 0 || x == n - 1 {
                borderCount += 1
                if distanceSquared(y * n + x, [0, 0, 0]) < distanceSquared(y * n + x, [255, 255, 255]) { blackVotes += 1 }
            }
        }
        let blackBackground = 2 * blackVotes > borderCount
        // 2. Each pixel takes the nearest palette colour when it lies under 60 from it.
        let palette = Color.allCases.map { $0.rgb.map(Int.init) }
        var label = [Int](repeating: -1, count: n * n)
        for p in 0..<(n * n) {
            let distances = palette.map { distanceSquared(p, $0) }
            let nearest = distances.indices.min { distances[$0] < distances[$1] }!
            if distances[nearest] < 60 * 60 { label[p] = nearest }
        }
        // 3. 4-connected components per colour; 4. measure those of 20 pixels or more.
        var visited = [Bool](repeating: false, count: n * n)
        var objects = [Object]()
        for start in 0..<(n * n) where label[start] >= 0 && !visited[start] {
            var stack = [start], members = [Int]()
            visited[start] = true
            while let p = stack.popLast() {
                members.append(p)
                let x = p % n, y = p / n
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
                where nx >= 0 && nx < n && ny >= 0 && ny < n {
                    let q = ny * n + nx
                    if !visited[q] && label[q] == label[start] { visited[q] = true; stack.append(q) }
                }
            }
            if members.count < 20 { continue }
            objects.append(measure(members, color: Color(rawValue: label[start])!))
        }
        objects.sort { ($0.cell, $0.color.rawValue) < ($1.cell, $1.color.rawValue) }
        return Reading(objects: objects, blackBackground: blackBackground)
    }

    /// Shape from the fill of the bounding box and the vertical offset of the centroid; size from
    /// the box; cell from the centroid (pixel centres at index + 0.5).
    static func measure(_ members: [Int], color: Color) -> Object {
        let n = canvasSide
        let xs = members.map { $0 % n }, ys = members.map { $0 / n }
        let minX = xs.min()!, maxX = xs.max()!, minY = ys.min()!, maxY = ys.max()!
        let w = Double(maxX - minX + 1), h = Double(maxY - minY + 1)
        let count = Double(members.count)
        let meanX = Double(xs.reduce(0, +)) / count, meanY = Double(ys.reduce(0, +)) / count
        let fill = count / (w * h)
        let verticalOffset = (meanY - Double(minY + maxY) / 2) / h
        let shape: Shape
        if fill >= 0.90 { shape = .square }
        else if fill >= 0.69 { shape = .circle }
        else { shape = verticalOffset > 0.07 ? .triangle : .diamond }
        let size: Size = max(w, h) < 13 ? .small : .large
        let third = Double(n) / 3
        let column = min(2, Int((meanX + 0.5) / third)), row = min(2, Int((meanY + 0.5) / third))
        return Object(size: size, color: color, shape: shape, cell: row * 3 + column)
    }

    /// Whether the picture shows exactly what the caption says; nil when the caption is not of
    /// the Shapes grammar.
    public static func matches(caption: String, image: Image) -> Bool? {
        guard let expected = parse(caption: caption) else { return nil }
        let reading = read(image)
        return reading.blackBackground == expected.blackBackground
            && multiset(reading.objects) == multiset(expected.objects)
    }

    static func multiset(_ objects: [Object]) -> [Object: Int] {
        objects.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    /// Accuracies over a set of (caption, picture) pairs. Per-attribute figures count caption
    /// objects, each paired with the object read in its cell (position: one was read there).
    public struct Score: Equatable, Sendable {
        public var images = 0, exact = 0, objects = 0
        public var color = 0, shape = 0, size = 0, position = 0
        public var objectCount = 0, background = 0
        public var unparsedCaptions = 0
        public init() {}

        public mutating func add(caption: String, image: Image) {
            images += 1
            guard let expected = Shapes.parse(caption: caption) else { unparsedCaptions += 1; return }
            let reading = Shapes.read(image)
            if reading.blackBackground == expected.blackBackground { background += 1 }
            if reading.objects.count == expected.objects.count { objectCount += 1 }
            if reading.blackBackground == expected.blackBackground
                && multiset(reading.objects) == multiset(expected.objects) { exact += 1 }
            for object in expected.objects {
                objects += 1
                let candidates = reading.objects.filter { $0.cell == object.cell }
                guard let read = candidates.max(by: { agreement($0, object) < agreement($1, object) }) else { continue }
                position += 1
                if read.color == object.color { color += 1 }
                if read.shape == object.shape { shape += 1 }
                if read.size == object.size { size += 1 }
            }
        }

        private func agreement(_ a: Object, _ b: Object) -> Int {
            (a.color == b.color ? 1 : 0) + (a.shape == b.shape ? 1 : 0) + (a.size == b.size ? 1 : 0)
        }

        public var exactAccuracy: Double { images == 0 ? 0 : Double(exact) / Double(images) }
    }
}
