// Dataset folders and the batch loader: pairing rules with errors that name the file, caption
// normalisation, seeded epochs that visit every item once, and exact resumption.
import Foundation
import Testing
import TesseraData
import TesseraImage

@Suite struct DatasetFolders {
    func makeFolder(_ name: String, items: Int) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-folder-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for i in 0..<items {
            try Image(width: 4, height: 4, color: [UInt8(i * 10), 0, 0]).writePNG(to: "\(directory)/item\(i).png")
            try Data("First  Caption \(i)\n\nsecond caption \(i)\n".utf8).write(to: URL(fileURLWithPath: "\(directory)/item\(i).txt"))
        }
        return directory
    }

    @Test func readsPairsAndNormalisesCaptions() throws {
        let directory = try makeFolder("read", items: 3)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dataset = try FolderDataset(directory: directory)
        #expect(dataset.items.map(\.name) == ["item0", "item1", "item2"])
        #expect(dataset.items[1].captions == ["first caption 1", "second caption 1"])
        #expect(try dataset.image(at: 2).pixels.prefix(3) == [20, 0, 0])
    }

    @Test func unpairedFilesAreNamedErrors() throws {
        let directory = try makeFolder("unpaired", items: 2)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.removeItem(atPath: "\(directory)/item1.txt")
        let error = #expect(throws: (any Error).self) { try FolderDataset(directory: directory) }
        #expect("\(error!)" == "\(directory)/item1.png: has no caption file item1.txt")
        try Data("\n  \n".utf8).write(to: URL(fileURLWithPath: "\(directory)/item1.txt"))
        let empty = #expect(throws: (any Error).self) { try FolderDataset(directory: directory) }
        #expect("\(empty!)" == "\(directory)/item1.txt: holds no caption")
        #expect(throws: (any Error).self) { try FolderDataset(directory: "/nonexistent/folder") }
    }

    @Test func epochsVisitEveryItemOnceAndResumeExactly() throws {
        let directory = try makeFolder("loader", items: 5)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dataset = try FolderDataset(directory: directory)
        var loader = try BatchLoader(dataset: dataset, batchSize: 5, imageSize: 2, seed: 42)
        let first = loader.next(), second = loader.next()
        #expect(first.indices.sorted() == [0, 1, 2, 3, 4] && second.indices.sorted() == [0, 1, 2, 3, 4])
        #expect(first.indices != second.indices)  // a new order each epoch (5! = 120 orders)
        #expect(first.pixels.count == 5 * 3 * 2 * 2)
        let item = first.indices[0]
        #expect(first.pixels[0] == Float(item * 10) / 127.5 - 1 && first.pixels[4] == -1)  // red, then green plane
        for (caption, index) in zip(first.captions, first.indices) { #expect(caption.hasSuffix(" caption \(index)")) }
        // both captions of an item turn up over a few epochs
        let drawn = Set((0..<6).flatMap { _ in loader.next().captions })
        #expect(drawn.contains { $0.hasPrefix("first") } && drawn.contains { $0.hasPrefix("second") })
        loader.restore(epoch: 2, position: 0)
        var resumed = try BatchLoader(dataset: dataset, batchSize: 5, imageSize: 2, seed: 42)
        resumed.restore(epoch: 1, position: 0)
        #expect(resumed.next().indices == second.indices)
        var other = try BatchLoader(dataset: dataset, batchSize: 5, imageSize: 2, seed: 43)
        #expect((0..<4).map { _ in other.next().indices } != (0..<4).map { _ in loader.next().indices })
    }
}
