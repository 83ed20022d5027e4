// `tessera train ar`, `generate` and `complete` driven as a user would on a tiny model: seeds
// reproduce pictures byte for byte, prompt files get a manifest, and every bad input is a
// one-line error with nothing written.
import Foundation
import Testing
import TesseraImage
import TesseraTensor

@Suite struct GenerateCommands {
    @Test func trainARThenGenerate() throws {
        let data = scratchFolder("ar-data"), model = scratchFolder("ar-model"), work = scratchFolder("ar-work")
        defer { [data, model, work].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        #expect(try runTessera(["dataset", "shapes", "--count", "6", "--out", data]).status == 0)
        #expect(try runTessera(["train", "tokenizer", "--data", data, "--vocab-size", "300", "--out", model + "/vocab"]).status == 0)
        let autoencoder = try runTessera(["train", "autoencoder", "--data", data, "--model-dir", model, "--image-size", "16",
                                          "--channels", "8,16,16", "--codebook-size", "16", "--code-dimension", "4", "--steps", "2"])
        #expect(autoencoder.status == 0, "\(autoencoder.stderr)")
        // Without a tokenizer the AR prior cannot be trained, and generate says the part is missing.
        let noPrior = try runTessera(["generate", "a red circle", "--model", model, "--out", work + "/x.png"])
        #expect(noPrior.status != 0 && noPrior.stderr.contains("this model has no AR prior"), "\(noPrior.stderr)")
        let trained = try runTessera(["train", "ar", "--data", data, "--model-dir", model, "--tokenizer", model + "/vocab",
                                      "--validation", data, "--steps", "3", "--width", "16", "--layers", "1", "--heads", "2",
                                      "--text-length", "24", "--batch-size", "4"])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("validation image loss"), "\(trained.stdout)")
        // Shapes captions begin with "a": the model reads prompts as they are.
        #expect(!(try String(contentsOfFile: model + "/model.json", encoding: .utf8)).contains("\"prompts\""))

        let first = try runTessera(["generate", "a red circle in the center", "--model", model, "--seed", "5",
                                    "--out", work + "/a.png", "--show-tokens", "--progress", work + "/rows.png"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("# tessera token grid v1") && first.stdout.contains("wrote \(work)/a.png"))
        _ = try runTessera(["generate", "a red circle in the center", "--model", model, "--seed", "5", "--out", work + "/b.png"])
        #expect(FileManager.default.contents(atPath: work + "/a.png") == FileManager.default.contents(atPath: work + "/b.png"))
        #expect(FileManager.default.fileExists(atPath: work + "/rows.png"))

        try "a red circle\na blue square on the left\n".write(toFile: work + "/prompts.txt", atomically: true, encoding: .utf8)
        let batch = try runTessera(["generate", "--prompts", work + "/prompts.txt", "--out-dir", work + "/out", "--count", "2",
                                    "--model", model, "--sheet", work + "/gallery.png"])
        #expect(batch.status == 0, "\(batch.stderr)")
        let manifest = try String(contentsOfFile: work + "/out/manifest.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(manifest.count == 4 && manifest[0].contains("\"prompt\":\"a red circle\"") && manifest[0].contains("\"prior\":\"ar\"")
                && manifest[0].contains("\"guidance\":1.0"))  // the AR prior's default: no guidance
        // The gallery: every picture at 2× (the first one in the first cell), captions under them.
        let gallery = try Image(contentsOfPNG: work + "/gallery.png")
        let picture = try Image(contentsOfPNG: work + "/out/0000-00.png")
        #expect(gallery.width >= 4 * 2 * picture.width && gallery.height > 2 * picture.height)
        let corner = (0..<2 * picture.height).allSatisfy { y in
            (0..<2 * picture.width).allSatisfy { x in gallery[4 + x, 4 + y] == picture[x / 2, y / 2] }
        }
        #expect(corner)

        let completed = try runTessera(["complete", data + "/train-000000.png", "a red circle", "--keep-rows", "2",
                                        "--model", model, "--out", work + "/c.png"])
        #expect(completed.status == 0, "\(completed.stderr)")

        // Bad input: one line, non-zero, nothing written.
        let cases: [([String], String)] = [
            (["generate", "  ", "--model", model, "--out", work + "/bad.png"], "the prompt is empty"),
            (["generate", "a red circle", "--model", model, "--prior", "diffusion", "--out", work + "/bad.png"], "no diffusion prior"),
            (["generate", "a red circle", "--model", model, "--rerank", "4", "--out", work + "/bad.png"], "needs a scorer"),
            (["generate", "a red circle", "--model", "nowhere", "--out", work + "/bad.png"], "no model called 'nowhere'"),
            (["generate", "a red circle", "--model", model, "--top-p", "1.5", "--out", work + "/bad.png"], "--top-p must be in (0, 1]"),
            (["complete", data + "/train-000000.png", "a red circle", "--keep-rows", "5", "--model", model, "--out", work + "/bad.png"],
             "--keep-rows 5 is beyond the 4-row grid"),
        ]
        for (arguments, message) in cases {
            let result = try runTessera(arguments)
            #expect(result.status != 0 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: work + "/bad.png"))
        let long = try runTessera(["generate", String(repeating: "a red circle and ", count: 10) + "a red circle", "--model", model,
                                   "--out", work + "/long.png"])
        #expect(long.status == 0 && long.stderr.contains("warning: the prompt is"), "\(long.stderr)")

        // The diffusion prior on the same model: one flag swaps the prior.
        let diffusion = try runTessera(["train", "diffusion", "--data", data, "--model-dir", model, "--validation", data,
                                        "--steps", "3", "--width", "16", "--layers", "1", "--heads", "2", "--batch-size", "4",
                                        "--diffusion-steps", "50", "--object-weight", "4", "--plain-background", "--flat-caption",
                                        "--cell-embedding"])
        #expect(diffusion.status == 0 && diffusion.stdout.contains("validation v error")
                && diffusion.stdout.contains("plain background: one code per place"), "\(diffusion.stderr)")
        let checkpoint = model + "/training/diffusion-checkpoint.safetensors"
        #expect(FileManager.default.fileExists(atPath: checkpoint))
        // --resume keeps the saved settings except the ones given again: here the timestep shift.
        let resumed = try runTessera(["train", "diffusion", "--data", data, "--model-dir", model, "--resume", "--steps", "4",
                                      "--timestep-shift", "2"])
        #expect(resumed.status == 0 && resumed.stdout.contains("resumed at step 3 of 4"), "\(resumed.stderr)")
        let saved = try SafetensorsFile(path: checkpoint).metadata["tessera.diffusion.training"] ?? ""
        #expect(saved.contains("\"timestepShift\":2") && saved.contains("\"objectWeight\":4")
                && saved.contains("\"plainBackground\":true"), "\(saved)")
        let written = try String(contentsOfFile: model + "/model.json", encoding: .utf8)
        #expect(written.contains("\"flatCaption\" : true") && written.contains("\"cellEmbedding\" : true"), "\(written)")
        let drawn = try runTessera(["generate", "a red circle", "--model", model, "--prior", "diffusion", "--steps", "8",
                                    "--seed", "3", "--out", work + "/d1.png", "--show-tokens", "--progress", work + "/steps.png"])
        #expect(drawn.status == 0 && drawn.stdout.contains("# tessera token grid v1"), "\(drawn.stderr)")
        _ = try runTessera(["generate", "a red circle", "--model", model, "--prior", "diffusion", "--steps", "8",
                            "--seed", "3", "--out", work + "/d2.png"])
        #expect(FileManager.default.contents(atPath: work + "/d1.png") == FileManager.default.contents(atPath: work + "/d2.png"))
        let headless = try runTessera(["generate", "a red circle", "--model", model, "--prior", "diffusion", "--token-head",
                                       "--out", work + "/head.png"])
        #expect(headless.status != 0 && headless.stderr.contains("has no token head")
                && !FileManager.default.fileExists(atPath: work + "/head.png"), "\(headless.stderr)")
        let strip = try Image(contentsOfPNG: work + "/steps.png")
        #expect(strip.width > 8 * 16)  // a frame for every step of 8, the picture 16 px wide
        let diffusionBatch = try runTessera(["generate", "--prompts", work + "/prompts.txt", "--out-dir", work + "/dout",
                                             "--model", model, "--prior", "diffusion", "--steps", "4", "--eta", "1"])
        #expect(diffusionBatch.status == 0, "\(diffusionBatch.stderr)")
        let lines = try String(contentsOfFile: work + "/dout/manifest.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 && lines[0].contains("\"prior\":\"diffusion\"") && lines[0].contains("\"steps\":4")
                && lines[0].contains("\"guidance\":3.0"))  // the diffusion prior's default guidance
        let diffusionCompleted = try runTessera(["complete", data + "/train-000000.png", "a red circle", "--keep-rows", "2",
                                                 "--prior", "diffusion", "--steps", "4", "--model", model, "--out", work + "/dc.png"])
        #expect(diffusionCompleted.status == 0, "\(diffusionCompleted.stderr)")
        let badEta = try runTessera(["generate", "a red circle", "--model", model, "--prior", "diffusion", "--eta", "2",
                                     "--out", work + "/bad.png"])
        #expect(badEta.status != 0 && badEta.stderr.contains("--eta must be 0…1"), "\(badEta.stderr)")
        let tooManySteps = try runTessera(["generate", "a red circle", "--model", model, "--prior", "diffusion", "--steps", "51",
                                           "--out", work + "/bad.png"])
        #expect(tooManySteps.status != 0 && tooManySteps.stderr.contains("more than the 50 noise levels"), "\(tooManySteps.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work + "/bad.png"))

        try scorerEvalAndCompare(data: data, model: model, work: work)
    }

    /// The shipped sample models, as the README's first command runs them: the default (emoji)
    /// model draws from a name, reranking included; the same seed gives the same bytes.
    @Test func shippedModelsGenerate() throws {
        let work = scratchFolder("shipped")
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let apple = try runTessera(["generate", "red apple", "--rerank", "2", "--out", work + "/apple.png"])
        #expect(apple.status == 0 && apple.stdout.contains("scorer:"), "\(apple.stderr)")
        let again = try runTessera(["generate", "red apple", "--rerank", "2", "--out", work + "/again.png"])
        #expect(again.status == 0)
        let (first, second) = (try Data(contentsOf: URL(fileURLWithPath: work + "/apple.png")),
                               try Data(contentsOf: URL(fileURLWithPath: work + "/again.png")))
        #expect(first == second)
        let picture = try Image(contentsOfPNG: work + "/apple.png")
        #expect(picture.width == 64 && picture.height == 64)
        // The issue's own example: emoji names have no article, so the model reads "a red apple"
        // as "red apple", says so, and draws the same bytes.
        let article = try runTessera(["generate", "A red apple", "--rerank", "2", "--out", work + "/article.png"])
        #expect(article.status == 0 && article.stderr.contains("reading \"a red apple\" as \"red apple\""), "\(article.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: work + "/article.png")) == first)
        // eval scores the prompt the model read: "A red apple" and "red apple" draw the same
        // picture and get the same CLIP score.
        var clipScores: [Double] = []
        for (index, prompt) in ["A red apple", "red apple"].enumerated() {
            let data = work + "/eval\(index)"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: work + "/apple.png", toPath: data + "/apple.png")
            try prompt.write(toFile: data + "/apple.txt", atomically: true, encoding: .utf8)
            let evaluated = try runTessera(["eval", "--data", data, "--json", "--seed", "1"])
            #expect(evaluated.status == 0, "\(evaluated.stderr)")
            let figures = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as? [String: Any]
            clipScores.append(figures?["clip_score"] as? Double ?? -1)
        }
        #expect(clipScores[0] == clipScores[1] && clipScores[0] > 0, "\(clipScores)")
        // A folder called emoji here that is not a model (a dataset, say) does not hide the shipped one.
        try FileManager.default.createDirectory(atPath: work + "/emoji", withIntermediateDirectories: true)
        let shadowed = try runTessera(["generate", "red apple", "--rerank", "2", "--out", "shadowed.png"], directory: work)
        #expect(shadowed.status == 0, "\(shadowed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: work + "/shadowed.png")) == first)
        let scene = try runTessera(["generate", "a small blue circle in the center", "--model", "shapes", "--out", work + "/scene.png"])
        #expect(scene.status == 0, "\(scene.stderr)")
        #expect(FileManager.default.fileExists(atPath: work + "/scene.png"))
        // The shipped diffusion priors: one flag swaps the prior; a seed gives the same picture.
        for (model, prompt) in [("shapes", "a small blue circle in the center"), ("emoji", "red apple")] {
            for name in ["d1", "d2"] {
                let drawn = try runTessera(["generate", prompt, "--model", model, "--prior", "diffusion",
                                            "--seed", "5", "--out", work + "/\(model)-\(name).png"])
                #expect(drawn.status == 0, "\(drawn.stderr)")
            }
            let (first, second) = (URL(fileURLWithPath: work + "/\(model)-d1.png"), URL(fileURLWithPath: work + "/\(model)-d2.png"))
            #expect(try Data(contentsOf: first) == Data(contentsOf: second), "\(model)")
        }
    }

    /// The scorer on the same model: it reranks and scores generate's pictures, and eval and
    /// compare write every figure and file they promise.
    func scorerEvalAndCompare(data: String, model: String, work: String) throws {
        let scorer = try runTessera(["train", "scorer", "--data", data, "--model-dir", model, "--validation", data, "--steps", "3",
                                     "--width", "16", "--layers", "1", "--heads", "2", "--channels", "8,16", "--embedding", "8",
                                     "--batch-size", "4"])
        #expect(scorer.status == 0 && scorer.stdout.contains("own caption first in batches of 4"), "\(scorer.stderr)")
        let reranked = try runTessera(["generate", "a red circle", "--model", model, "--rerank", "3", "--out", work + "/r.png"])
        #expect(reranked.status == 0 && reranked.stdout.contains("scorer: "), "\(reranked.stderr)")
        let scored = try runTessera(["generate", "--prompts", work + "/prompts.txt", "--out-dir", work + "/scored", "--model", model,
                                     "--rerank", "2"])
        #expect(scored.status == 0, "\(scored.stderr)")
        let manifest = try String(contentsOfFile: work + "/scored/manifest.jsonl", encoding: .utf8)
        #expect(manifest.contains("\"rerank\":2") && manifest.contains("\"score\":"), "\(manifest)")

        let evaluated = try runTessera(["eval", "--model", model, "--prior", "ar", "--data", data, "--count", "6", "--json"])
        #expect(evaluated.status == 0, "\(evaluated.stderr)")
        let figures = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as? [String: Any]
        for key in ["exact_match", "clip_score", "r_precision", "fid", "reconstruction_psnr", "seconds_per_image"] {
            #expect(figures?.keys.contains(key) == true, "\(key) missing from \(evaluated.stdout)")
        }
        #expect(figures?["images"] as? Int == 6 && figures?["prior"] as? String == "ar")

        let out = work + "/compare"
        let compared = try runTessera(["compare", "--model", model, "--prompts", work + "/prompts.txt", "--out", out, "--steps", "4",
                                       "--reference", data, "--count", "2"])
        #expect(compared.status == 0 && compared.stdout.contains("R-precision"), "\(compared.stderr)")
        for file in ["ar/manifest.jsonl", "ar/0001-01.png", "diffusion/manifest.jsonl", "diffusion/0001-01.png", "report.md",
                     "side-by-side.png"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
        }
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as? [String: Any]
        let priors = report?["priors"] as? [String: [String: Any]]
        for prior in ["ar", "diffusion"] {
            let entry = priors?[prior]
            #expect(entry?["images"] as? Int == 4, "\(prior)")
            for key in ["exact_match", "clip_score", "r_precision", "fid", "seconds_per_image", "settings"] {
                #expect(entry?.keys.contains(key) == true, "\(prior).\(key)")
            }
            #expect(entry?["clip_score"] is Double && entry?["r_precision"] is Double && entry?["fid"] is Double, "\(prior)")
        }
        let withPrior = try runTessera(["compare", "--model", model, "--prompts", work + "/prompts.txt", "--out", work + "/bad",
                                        "--prior", "ar"])
        #expect(withPrior.status != 0 && withPrior.stderr.contains("--prior does not apply"), "\(withPrior.stderr)")
        // --token-head concerns the diffusion side only: the AR side takes it without complaint, and
        // this model's diffusion prior, trained without a token head, is refused by name.
        let headless = try runTessera(["compare", "--model", model, "--prompts", work + "/prompts.txt", "--out", work + "/bad",
                                       "--token-head"])
        #expect(headless.status != 0 && headless.stderr.contains("has no token head"), "\(headless.stderr)")
        let noPrompts = try runTessera(["compare", "--model", model, "--prompts", work + "/missing.txt", "--out", work + "/bad"])
        #expect(noPrompts.status != 0 && noPrompts.stderr.contains("missing.txt: cannot read"), "\(noPrompts.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work + "/bad"))
    }
}
