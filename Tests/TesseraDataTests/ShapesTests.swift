// Shapes v1 against ../shared/SHAPES.md: the checker reads the renderer's own pictures at 100 %
// on every split, the splits respect the held-out pairs, the grammar round-trips, and a scene is
// a pure function of (seed, split, index).
import Foundation
import Testing
import TesseraData
import TesseraImage
import TesseraText

@Suite struct ShapesV1 {
    @Test(arguments: Shapes.Split.allCases)
    func checkerReadsEveryRenderedPicture(split: Shapes.Split) {
        var score = Shapes.Score()
        for index in 0..<2_000 {
            let scene = Shapes.scene(seed: 11, split: split, index: index)
            score.add(caption: scene.caption, image: Shapes.render(scene))
        }
        #expect(score.images == 2_000 && score.unparsedCaptions == 0)
        #expect(score.exact == 2_000, "\(score)")
        #expect(score.color == score.objects && score.shape == score.objects && score.position == score.objects)
    }

    @Test func splitsHoldOutTheFourPairs() {
        for index in 0..<3_000 {
            #expect(!Shapes.scene(seed: 3, split: .train, index: index).objects.contains { $0.object.isHeldOut })
            #expect(!Shapes.scene(seed: 3, split: .testSeen, index: index).objects.contains { $0.object.isHeldOut })
            #expect(Shapes.scene(seed: 3, split: .testNovel, index: index).objects.contains { $0.object.isHeldOut })
        }
        #expect(Shapes.heldOutPairs.count == 4)
    }

    @Test func sceneIsAFunctionOfSeedSplitAndIndex() {
        let a = Shapes.scene(seed: 5, split: .train, index: 17)
        #expect(a == Shapes.scene(seed: 5, split: .train, index: 17))
        #expect(Shapes.render(a) == Shapes.render(Shapes.scene(seed: 5, split: .train, index: 17)))
        #expect(a != Shapes.scene(seed: 5, split: .testSeen, index: 17))
        #expect(a != Shapes.scene(seed: 6, split: .train, index: 17))
        #expect(a != Shapes.scene(seed: 5, split: .train, index: 18))
    }

    @Test func choicesAreRoughlyUniform() {
        var black = 0, two = 0, cells = [Int](repeating: 0, count: 9)
        let count = 4_000
        for index in 0..<count {
            let scene = Shapes.scene(seed: 1, split: .train, index: index)
            if scene.blackBackground { black += 1 }
            if scene.objects.count == 2 { two += 1 }
            for object in scene.objects { cells[object.object.cell] += 1 }
        }
        #expect(abs(Double(black) / Double(count) - 0.25) < 0.03)
        #expect(abs(Double(two) / Double(count) - 0.5) < 0.03)
        #expect(cells.allSatisfy { $0 > 500 })
    }

    @Test func captionGrammar() {
        let caption = "a large blue square at the top and a small yellow diamond in the bottom right"
        let parsed = Shapes.parse(caption: caption)
        #expect(parsed?.objects.count == 2 && parsed?.blackBackground == false)
        #expect(Shapes.parse(caption: "a small red circle in the top left on a black background")?.blackBackground == true)
        // reading order is part of the grammar; so are the words
        #expect(Shapes.parse(caption: "a small yellow diamond in the bottom right and a large blue square at the top") == nil)
        #expect(Shapes.parse(caption: "a small red circle in the top left.") == nil)
        #expect(Shapes.parse(caption: "a tiny red circle in the top left") == nil)
        #expect(Shapes.parse(caption: "") == nil)
    }

    @Test func checkerRejectsAWrongCaption() {
        let scene = Shapes.scene(seed: 2, split: .train, index: 0)
        let image = Shapes.render(scene)
        #expect(Shapes.matches(caption: scene.caption, image: image) == true)
        var other = scene.objects.map(\.object)
        other[0].color = other[0].color == .red ? .blue : .red
        #expect(Shapes.matches(caption: Shapes.caption(other, blackBackground: scene.blackBackground), image: image) == false)
        #expect(Shapes.matches(caption: Shapes.caption(scene.objects.map(\.object), blackBackground: !scene.blackBackground),
                               image: image) == false)
        // an empty canvas shows nothing
        #expect(Shapes.read(Image(width: 64, height: 64, color: [255, 255, 255])).objects.isEmpty)
    }

    /// A caption drawn from its words alone (the FID reference of `compare`) is read back as
    /// that caption, and its objects are jittered as the dataset's are.
    @Test func aCaptionIsDrawnAsTheCheckerReadsIt() {
        for index in 0..<40 {
            let caption = Shapes.scene(seed: 5, split: .testNovel, index: index).caption
            let picture = Shapes.picture(caption: caption, seed: UInt64(index))
            #expect(picture.map { Shapes.matches(caption: caption, image: $0) } == true, "\(caption)")
        }
        let caption = "a large red square in the center"
        #expect(Shapes.picture(caption: caption, seed: 1) != Shapes.picture(caption: caption, seed: 2))
        #expect(Shapes.picture(caption: "a red apple", seed: 1) == nil)
    }

    @Test func renderingFollowsThePixelRules() {
        // A small square centred on a pixel corner covers exactly 10×10 pixels, fully.
        let square = Shapes.PlacedObject(object: .init(size: .small, color: .red, shape: .square, cell: 4),
                                         centerX: 32, centerY: 32)
        let image = Shapes.render(Shapes.Scene(objects: [square], blackBackground: false))
        let red = (0..<(64 * 64)).filter { image.pixels[$0 * 3] == 220 && image.pixels[$0 * 3 + 1] == 40 }
        #expect(red.count == 100)
        #expect(Array(image[27, 27]) == [220, 40, 40] && Array(image[26, 27]) == [255, 255, 255])
        // half a pixel off the grid: edge pixels are half covered, rounded half up
        let shifted = Shapes.PlacedObject(object: square.object, centerX: 32.5, centerY: 32)
        let half = Shapes.render(Shapes.Scene(objects: [shifted], blackBackground: true))
        #expect(Array(half[27, 30]) == [110, 20, 20] && Array(half[37, 30]) == [110, 20, 20])
    }
}

@Suite struct ShippedVocabularies {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Vocab").path

    @Test func shapesVocabularyHasOneTokenPerWord() throws {
        let tokenizer = try BPETokenizer(directory: Self.root + "/shapes")
        for index in 0..<200 {
            let caption = Shapes.scene(seed: 9, split: .testNovel, index: index).caption
            #expect(tokenizer.encode(caption).count == caption.split(separator: " ").count, "\(caption)")
        }
    }

    @Test func emojiVocabularyLoads() throws {
        let tokenizer = try BPETokenizer(directory: Self.root + "/emoji")
        #expect(tokenizer.vocabularySize == 1_024)
        #expect(tokenizer.decode(tokenizer.encode("grinning face")) == "grinning face")
        #expect(tokenizer.encode("grinning face").count < "grinning face".utf8.count / 2)  // merges were learnt
    }
}
