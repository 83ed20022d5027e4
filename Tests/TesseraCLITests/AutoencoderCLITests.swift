// `tessera train autoencoder`, `tokens`, `decode` and `codebook` driven as a user would: a
// tiny model trained for a few steps, a picture to tokens and back, and the errors for bad
// grids, bad pictures and missing models, with nothing written on failure.
import Foundation
import Testing

@Suite struct AutoencoderCommands {
    @Test func finiteScalarQuantizerAndPositionNormFromTheCommandLine() throws {
        let data = scratchFolder("fsq-data"), model = scratchFolder("fsq-model")
        defer { [data, model].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        #expect(try runTessera(["dataset", "shapes", "--count", "4", "--out", data]).status == 0)
        let common = ["train", "autoencoder", "--data", data, "--model-dir", model, "--image-size", "16",
                      "--channels", "8,16,16", "--steps", "2", "--batch-size", "2"]
        let wrong = try runTessera(common + ["--levels", "4,4"])
        #expect(wrong.status != 0 && wrong.stderr.contains("--levels belongs to --quantizer fsq"), "\(wrong.stderr)")
        let trained = try runTessera(common + ["--quantizer", "fsq", "--levels", "3,4,2", "--norm", "position"])
        #expect(trained.status == 0 && trained.stdout.contains("24 codes of 3 (fsq)"), "\(trained.stderr)\(trained.stdout)")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/model.json"))) as? [String: Any]
        let config = manifest?["autoencoder"] as? [String: Any]
        #expect(config?["levels"] as? [Int] == [3, 4, 2] && manifest?["codebookSize"] as? Int == 24)
        #expect(config?["norm"] as? String == "position", "\(String(describing: config))")
        let tokens = try runTessera(["tokens", data + "/train-000000.png", "--model", model, "--format", "json"])
        #expect(tokens.status == 0 && tokens.stdout.hasPrefix("{\"grid\":[4,4],\"codebook\":24,"), "\(tokens.stderr)")
    }

    @Test func trainTokensDecodeRoundTrip() throws {
        let data = scratchFolder("ae-data"), model = scratchFolder("ae-model"), work = scratchFolder("ae-work")
        defer { [data, model, work].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        #expect(try runTessera(["dataset", "shapes", "--count", "4", "--out", data]).status == 0)
        let trained = try runTessera(["train", "autoencoder", "--data", data, "--model-dir", model, "--validation", data,
                                      "--image-size", "16", "--channels", "8,16,16", "--codebook-size", "16",
                                      "--code-dimension", "4", "--steps", "3", "--batch-size", "2"])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("held-out PSNR"), "\(trained.stdout)")
        for file in ["model.json", "autoencoder.safetensors", "training/autoencoder-checkpoint.safetensors"] {
            #expect(FileManager.default.fileExists(atPath: model + "/" + file), "\(file)")
        }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/model.json"))) as? [String: Any]
        #expect(manifest?["grid"] as? [Int] == [4, 4] && manifest?["codebookSize"] as? Int == 16)

        // The tokenizer's round trip scored by eval (16 px pictures: no Shapes checker).
        let scored = try runTessera(["eval", "--model", model, "--data", data, "--autoencoder", "--json", "--out-dir", work + "/redrawn"])
        #expect(scored.status == 0, "\(scored.stderr)")
        let redrawn = try FileManager.default.contentsOfDirectory(atPath: work + "/redrawn").sorted()
        #expect(redrawn.count == 8 && redrawn.first == "train-000000.png", "\(redrawn)")
        let caption = try String(contentsOfFile: work + "/redrawn/train-000000.txt", encoding: .utf8)
        #expect(caption == (try String(contentsOfFile: data + "/train-000000.txt", encoding: .utf8)).split(separator: "\n").first.map(String.init))
        let figures = try JSONSerialization.jsonObject(with: Data(scored.stdout.utf8)) as? [String: Any]
        #expect(figures?["images"] as? Int == 4 && (figures?["psnr"] as? Double ?? 0) > 5, "\(scored.stdout)")
        #expect(figures?["exact_match"] is NSNull, "\(scored.stdout)")

        let tokens = try runTessera(["tokens", data + "/train-000000.png", "--model", model])
        #expect(tokens.status == 0, "\(tokens.stderr)")
        let lines = tokens.stdout.split(separator: "\n")
        #expect(lines.count == 6 && lines[0] == "# tessera token grid v1", "\(tokens.stdout)")
        #expect(lines[1].contains("grid: 4x4  codebook: 16"))
        #expect(lines[2...].allSatisfy { $0.split(separator: " ").count == 4 })
        let json = try runTessera(["tokens", data + "/train-000000.png", "--model", model, "--format", "json"])
        #expect(json.stdout.hasPrefix("{\"grid\":[4,4],\"codebook\":16,\"tokens\":[["))

        try tokens.stdout.write(toFile: work + "/grid.txt", atomically: true, encoding: .utf8)
        let decoded = try runTessera(["decode", work + "/grid.txt", "--out", work + "/drawn.png", "--model", model])
        #expect(decoded.status == 0, "\(decoded.stderr)")
        let png = try #require(FileManager.default.contents(atPath: work + "/drawn.png"))
        #expect(png[16..<24] == Data([0, 0, 0, 16, 0, 0, 0, 16]))
        // Decoding the same grid twice draws the same picture.
        _ = try runTessera(["decode", work + "/grid.txt", "--out", work + "/again.png", "--model", model])
        #expect(FileManager.default.contents(atPath: work + "/again.png") == png)

        let sheet = try runTessera(["codebook", "--model", model, "--out", work + "/codebook.png"])
        #expect(sheet.status == 0 && FileManager.default.fileExists(atPath: work + "/codebook.png"), "\(sheet.stderr)")

        // Decoder fine-tuning redraws, but the tokens of a picture stay the same.
        let tuned = try runTessera(["train", "autoencoder", "--fine-tune-decoder", "--data", data, "--model-dir", model,
                                    "--steps", "2", "--batch-size", "2"])
        #expect(tuned.status == 0 && tuned.stdout.contains("decoder fine-tuning"), "\(tuned.stderr)")
        #expect(FileManager.default.fileExists(atPath: model + "/training/decoder-checkpoint.safetensors"))
        #expect(try runTessera(["tokens", data + "/train-000000.png", "--model", model]).stdout == tokens.stdout)
        // A deeper decoder on the same tokens; model.json follows.
        let deeper = try runTessera(["train", "autoencoder", "--fine-tune-decoder", "--decoder-blocks", "1,1,2",
                                     "--data", data, "--model-dir", model, "--steps", "2", "--batch-size", "2"])
        #expect(deeper.status == 0, "\(deeper.stderr)")
        #expect(try runTessera(["tokens", data + "/train-000000.png", "--model", model]).stdout == tokens.stdout)
        let reshaped = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/model.json"))) as? [String: Any]
        #expect((reshaped?["autoencoder"] as? [String: Any])?["decoderBlocks"] as? [Int] == [1, 1, 2])
        let badShape = try runTessera(["train", "autoencoder", "--fine-tune-decoder", "--decoder-channels", "8,16",
                                       "--data", data, "--model-dir", model, "--steps", "2"])
        #expect(badShape.status != 0 && badShape.stderr.contains("decoderChannels need one count per level"), "\(badShape.stderr)")

        // Bad grids: the line is named and nothing is written.
        try "1 2 3 4\n1 2 3\n1 2 3 4\n1 2 3 4\n".write(toFile: work + "/ragged.txt", atomically: true, encoding: .utf8)
        let ragged = try runTessera(["decode", work + "/ragged.txt", "--out", work + "/bad.png", "--model", model])
        #expect(ragged.status != 0 && ragged.stderr.contains("ragged.txt: line 2: row 2 has 3 ids, the grid is 4 wide"), "\(ragged.stderr)")
        try "1 2 3 4\n1 2 3 16\n1 2 3 4\n1 2 3 4\n".write(toFile: work + "/range.txt", atomically: true, encoding: .utf8)
        let range = try runTessera(["decode", work + "/range.txt", "--out", work + "/bad.png", "--model", model])
        #expect(range.status != 0 && range.stderr.contains("range.txt: line 2: token 16 is outside the codebook"), "\(range.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work + "/bad.png"))

        // A truncated picture, a missing model, a damaged weights file.
        let picture = try #require(FileManager.default.contents(atPath: data + "/train-000001.png"))
        try picture.prefix(picture.count / 2).write(to: URL(fileURLWithPath: work + "/cut.png"))
        let cut = try runTessera(["tokens", work + "/cut.png", "--model", model])
        #expect(cut.status != 0 && cut.stderr.contains("cut.png"), "\(cut.stderr)")
        let missing = try runTessera(["tokens", data + "/train-000000.png", "--model", "no-such-model"])
        #expect(missing.status != 0 && missing.stderr.contains("no model called 'no-such-model'"), "\(missing.stderr)")
        let weights = try #require(FileManager.default.contents(atPath: model + "/autoencoder.safetensors"))
        try weights.prefix(weights.count - 64).write(to: URL(fileURLWithPath: model + "/autoencoder.safetensors"))
        let damaged = try runTessera(["tokens", data + "/train-000000.png", "--model", model])
        #expect(damaged.status != 0 && damaged.stderr.contains("autoencoder.safetensors"), "\(damaged.stderr)")
        #expect(damaged.stderr.split(separator: "\n").count == 1)
    }

    @Test func resumeNeedsACheckpoint() throws {
        let data = scratchFolder("ae-resume-data"), model = scratchFolder("ae-resume-model")
        defer { [data, model].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        #expect(try runTessera(["dataset", "shapes", "--count", "2", "--out", data]).status == 0)
        let result = try runTessera(["train", "autoencoder", "--data", data, "--model-dir", model, "--resume"])
        #expect(result.status != 0 && result.stderr.contains("autoencoder-checkpoint.safetensors"), "\(result.stderr)")
        let untrained = try runTessera(["train", "autoencoder", "--fine-tune-decoder", "--data", data, "--model-dir", model])
        #expect(untrained.status != 0 && untrained.stderr.contains("model.json"), "\(untrained.stderr)")
    }
}

@Suite struct ShippedModels {
    /// The shipped emoji model is found by name from the working directory, tokenizes a
    /// picture to its 16×16 grid and draws it back.
    @Test func emojiModelTokenizesAndDraws() throws {
        let data = scratchFolder("shipped-data"), work = scratchFolder("shipped-work")
        defer { [data, work].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        #expect(try runTessera(["dataset", "shapes", "--count", "1", "--out", data]).status == 0)
        let tokens = try runTessera(["tokens", data + "/train-000000.png", "--model", "emoji"])
        #expect(tokens.status == 0, "\(tokens.stderr)")
        #expect(tokens.stdout.contains("# model: emoji  grid: 16x16  codebook: 512"))
        try tokens.stdout.write(toFile: work + "/grid.txt", atomically: true, encoding: .utf8)
        let drawn = try runTessera(["decode", work + "/grid.txt", "--out", work + "/drawn.png", "--model", "emoji"])
        #expect(drawn.status == 0, "\(drawn.stderr)")
    }
}
