// `tessera dataset` and `tessera train tokenizer` driven as a user would, including the one-line
// errors for bad options and missing inputs.
import Foundation
import Testing

func scratchFolder(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-cli-\(name)-\(getpid())").path
    try? FileManager.default.removeItem(atPath: path)
    return path
}

@Suite struct DatasetCommands {
    @Test func shapesThenTokenizer() throws {
        let folder = scratchFolder("shapes"), vocabulary = scratchFolder("shapes-vocab")
        defer { try? FileManager.default.removeItem(atPath: folder); try? FileManager.default.removeItem(atPath: vocabulary) }
        let result = try runTessera(["dataset", "shapes", "--split", "test-novel", "--count", "12", "--seed", "3", "--out", folder])
        #expect(result.status == 0, "\(result.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(files.count == 24 && files.first == "test-novel-000000.png" && files.last == "test-novel-000011.txt")
        let caption = try String(contentsOfFile: folder + "/test-novel-000000.txt", encoding: .utf8)
        #expect(caption.hasPrefix("a ") && caption.hasSuffix("\n"))
        // the same seed writes the same files
        let again = scratchFolder("shapes-again")
        defer { try? FileManager.default.removeItem(atPath: again) }
        _ = try runTessera(["dataset", "shapes", "--split", "test-novel", "--count", "2", "--seed", "3", "--out", again])
        #expect(FileManager.default.contents(atPath: again + "/test-novel-000001.png")
                == FileManager.default.contents(atPath: folder + "/test-novel-000001.png"))

        let trained = try runTessera(["train", "tokenizer", "--data", folder, "--vocab-size", "300", "--out", vocabulary])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("merges from 12 captions"))
        #expect(FileManager.default.fileExists(atPath: vocabulary + "/vocab.json")
                && FileManager.default.fileExists(atPath: vocabulary + "/merges.txt"))
    }

    @Test func badOptionsAreOneLineErrors() throws {
        let folder = scratchFolder("bad")
        let split = try runTessera(["dataset", "shapes", "--split", "validation", "--out", folder])
        #expect(split.status != 0 && split.stderr.contains("unknown split 'validation'"))
        let font = try runTessera(["dataset", "emoji", "--font", "/nonexistent/font.ttf", "--out", folder])
        #expect(font.status != 0)
        #expect(font.stderr.split(separator: "\n").first?.contains("/nonexistent/font.ttf: missing or unreadable font") == true,
                "\(font.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder))  // nothing written
        let data = try runTessera(["train", "tokenizer", "--data", "/nonexistent/data", "--out", folder])
        #expect(data.status != 0 && data.stderr.contains("/nonexistent/data: not a readable dataset folder"))
    }

    @Test func emojiAtSixteenPixels() throws {
        let folder = scratchFolder("emoji")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let result = try runTessera(["dataset", "emoji", "--size", "16", "--out", folder])
        #expect(result.status == 0, "\(result.stderr)")
        let train = try FileManager.default.contentsOfDirectory(atPath: folder + "/train")
        let validation = try FileManager.default.contentsOfDirectory(atPath: folder + "/validation")
        #expect((train.count + validation.count) / 2 >= 3_500, "\(result.stdout)")
        #expect(train.contains("1f600.png") && train.contains("1f600.txt"))
        let png = try #require(FileManager.default.contents(atPath: folder + "/train/1f600.png"))
        #expect(png[16..<24] == Data([0, 0, 0, 16, 0, 0, 0, 16]))  // IHDR width and height
    }
}
