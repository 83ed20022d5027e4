// `tessera generate`: pictures from prompts with a model's prior, one prompt or a file of
// prompts (with manifest.jsonl). `tessera complete` keeps the first rows of a picture's token
// grid and lets the prior write the rest (DALL-E's image completion).
import ArgumentParser
import Foundation
import TesseraData
import TesseraEval
import TesseraImage
import TesseraModels
import TesseraTensor
import TesseraText

enum PriorKind: String, ExpressibleByArgument, CaseIterable {
    case ar, diffusion
}

struct SamplingArguments: ParsableArguments {
    @Option(name: .customLong("prior"), help: "Which prior writes the token grid: ar (default) or diffusion.")
    var chosenPrior: PriorKind?
    @Option(help: "Seed; the same seed gives the same picture.")
    var seed: UInt64 = 0
    @Option(help: "Sampling temperature (0 picks the most likely code; AR prior).")
    var temperature: Float = 0.7
    @Option(name: .customLong("top-k"), help: "Sample among the k most likely codes (0: all; AR prior).")
    var topK = 8
    @Option(name: .customLong("top-p"), help: "Sample within the smallest set of codes of this total probability (1: all; AR prior).")
    var topP: Float = 1
    @Option(name: .customLong("guidance"),
            help: "Classifier-free guidance scale (1: none; default 1 for the AR prior, \(Self.diffusionGuidance) for the diffusion prior).")
    var chosenGuidance: Float?
    @Option(help: "Denoising steps (diffusion prior; default 25).")
    var steps: Int?
    @Option(help: "Noise of each denoising step: 0 is DDIM (deterministic given the start), 1 is DDPM's ancestral sampler (diffusion prior).")
    var eta: Float = 0
    @Option(help: "Draw N candidates and keep the one the scorer ranks best.")
    var rerank: Int?
    @Flag(name: .customLong("token-head"),
          help: "Diffusion prior trained with --token-loss: take each step's clean latent from the token head's probabilities.")
    var tokenHead = false

    func validate() throws {
        guard temperature >= 0 && temperature <= 10 else { throw ValidationError("--temperature must be 0…10") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        if let chosenGuidance, !(0...30).contains(chosenGuidance) { throw ValidationError("--guidance must be 0…30") }
        if let steps, steps < 1 || steps > 10_000 { throw ValidationError("--steps must be 1…10,000") }
        guard eta >= 0 && eta <= 1 else { throw ValidationError("--eta must be 0…1") }
        if let rerank, rerank < 1 || rerank > 256 { throw ValidationError("--rerank must be 1…256") }
    }

    var prior: PriorKind {
        get { chosenPrior ?? .ar }
        set { chosenPrior = newValue }
    }

    /// Guidance at which the shipped Shapes diffusion prior drew the most exact pictures (README);
    /// the AR prior draws best without (FINDINGS.md).
    static let diffusionGuidance: Float = 3

    var guidance: Float { chosenGuidance ?? (prior == .ar ? 1 : Self.diffusionGuidance) }

    var options: SamplingOptions {
        SamplingOptions(temperature: temperature, topK: topK, topP: topP, guidance: guidance)
    }

    var diffusionOptions: DiffusionSamplingOptions {
        DiffusionSamplingOptions(steps: steps ?? DiffusionSamplingOptions().steps, eta: eta, guidance: guidance,
                                 tokenHead: tokenHead)
    }

    /// The settings manifest.jsonl records for this prior.
    var manifestFields: String {
        switch prior {
        case .ar: "\"temperature\":\(temperature),\"top_k\":\(topK),\"top_p\":\(topP),\"guidance\":\(guidance)"
        case .diffusion: "\"steps\":\(diffusionOptions.steps),\"eta\":\(eta),\"guidance\":\(guidance)"
            + (tokenHead ? ",\"token_head\":true" : "")
        }
    }
}

/// One of a model's priors, ready to write token grids.
enum LoadedPrior {
    case ar(ARPrior)
    case diffusion(DiffusionPrior)

    var textLength: Int {
        switch self {
        case .ar(let prior): prior.config.textLength
        case .diffusion(let prior): prior.config.textLength
        }
    }

    /// (h, w, K) of the grids it writes.
    var grid: (height: Int, width: Int, codebookSize: Int) {
        switch self {
        case .ar(let p): (p.config.gridHeight, p.config.gridWidth, p.config.codebookSize)
        case .diffusion(let p): (p.config.gridHeight, p.config.gridWidth, p.config.codebookSize)
        }
    }

    func textTokens(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .ar(let prior): prior.textTokens(ids)
        case .diffusion(let prior): prior.textTokens(ids)
        }
    }
}

/// A model's parts for generation, loaded once.
struct LoadedModel {
    let directory: String
    let manifest: ModelManifest
    let autoencoder: Autoencoder
    let prior: LoadedPrior
    let tokenizer: BPETokenizer
    /// The model's scorer when it has one: it reranks and scores the pictures.
    let scorer: Scorer?
    let samplingArguments: SamplingArguments

    init(_ option: ModelOption, sampling: SamplingArguments) throws {
        samplingArguments = sampling
        directory = try option.directory()
        (autoencoder, manifest) = try Autoencoder.load(modelDirectory: directory)
        scorer = manifest.parts["scorer"] == nil ? nil : try Scorer.load(modelDirectory: directory, manifest: manifest)
        if sampling.rerank != nil && scorer == nil {
            throw TesseraError("--rerank needs a scorer, and this model has none; train one with `tessera train scorer`", path: directory)
        }
        switch sampling.prior {
        case .ar:
            if sampling.steps != nil { throw TesseraError("--steps applies to the diffusion prior only") }
            if sampling.tokenHead { throw TesseraError("--token-head applies to the diffusion prior only") }
            prior = .ar(try ARPrior.load(modelDirectory: directory, manifest: manifest))
        case .diffusion:
            let diffusion = try DiffusionPrior.load(modelDirectory: directory, manifest: manifest)
            if sampling.tokenHead && diffusion.config.tokenLossWeight == 0 {
                throw TesseraError("--token-head: this model's diffusion prior has no token head (it was trained without --token-loss)",
                                   path: directory)
            }
            if let steps = sampling.steps, steps > diffusion.config.diffusionSteps {
                throw TesseraError("--steps \(steps) is more than the \(diffusion.config.diffusionSteps) noise levels of this model's diffusion prior")
            }
            prior = .diffusion(diffusion)
        }
        guard let folder = manifest.tokenizerDirectory(in: directory) else {
            throw TesseraError("model.json names no text tokenizer", path: directory)
        }
        tokenizer = try BPETokenizer(directory: folder)
    }

    /// The prompt's text tokens, or an error for an empty prompt; a long one is cut with a warning.
    func textTokens(_ prompt: String) throws -> [Int32] {
        prior.textTokens(try captionIds(prompt, warn: true))
    }

    /// The prompt as the model reads it: normalised, then as the model's captions taught it
    /// (`PromptReading`; when that changes it and `warn`, a note says so).
    func caption(_ prompt: String, warn: Bool = false) -> String {
        let normalized = normalizeCaption(prompt)
        let read = manifest.prompts?.read(normalized) ?? normalized
        if read != normalized && warn {
            FileHandle.standardError.write(Data("note: the \(manifest.name) model's captions have no leading article; reading \"\(normalized)\" as \"\(read)\"\n".utf8))
        }
        return read
    }

    /// The prompt's BPE ids, cut to what the prior reads (with a warning when `warn`).
    func captionIds(_ prompt: String, warn: Bool = false) throws -> [Int32] {
        let normalized = caption(prompt, warn: warn)
        guard !normalized.isEmpty else { throw TesseraError("the prompt is empty; say what to draw, e.g. \"a red circle\"") }
        let ids = tokenizer.encode(normalized)
        let length = prior.textLength
        if ids.count > length && warn {
            let kept = tokenizer.decode(Array(ids.prefix(length)))
            FileHandle.standardError.write(Data("warning: the prompt is \(ids.count) tokens, the model reads \(length); using \"\(kept)\"\n".utf8))
        }
        return ids.prefix(length).map { Int32($0) }
    }

    /// `count` pictures of `prompt` from `seed`. With `rerank` R, R candidates are drawn for
    /// each (one batch of count·R, the same seed) and the scorer keeps the best of each R.
    /// Scores are the scorer's CLIP scores (100 · cosine, clipped at 0) when it is present.
    func generate(_ prompt: String, count: Int, sampling: SamplingArguments, seed: UInt64,
                  onProgress: ((Image) -> Void)? = nil) throws -> (pictures: [Image], tokens: [Int32], scores: [Double]?) {
        let candidates = sampling.rerank ?? 1
        let text = try textTokens(prompt)
        let tokens = sample(text: [Int32]((0..<count * candidates).flatMap { _ in text }), sampling: sampling, seed: seed,
                            onProgress: onProgress)
        let drawn = draw(tokens, count: count * candidates)
        guard let scorer else { return (drawn, tokens, nil) }
        let scores = clipScores(drawn, prompt: prompt, scorer: scorer)
        var kept: [Int] = []
        for group in 0..<count {
            let range = group * candidates..<(group + 1) * candidates
            kept.append(range.max { scores[$0] < scores[$1] }!)  // the first of equals
        }
        let n = prior.grid.height * prior.grid.width
        return (kept.map { drawn[$0] }, kept.flatMap { tokens[$0 * n..<($0 + 1) * n] }, kept.map { scores[$0] })
    }

    /// The scorer's CLIP score of each picture with `prompt`.
    func clipScores(_ pictures: [Image], prompt: String, scorer: Scorer) -> [Double] {
        let ids = Array(tokenizer.encode(caption(prompt)).prefix(scorer.config.textLength).map { Int32($0) })
        let e = scorer.config.embedding
        let text = scorer.textFeatures([ids])
        let images = scorer.imageFeatures(pictures.map { planarPixels($0.resized(width: scorer.config.imageSize, height: scorer.config.imageSize)) })
        return Metrics.clipScores(images: images, texts: [Float]((0..<pictures.count).flatMap { _ in text }), dimension: e)
    }

    /// Token grids (B·h·w) for `text` (B rows of text tokens). `keep` (B·h·w, −1 where free)
    /// fixes tokens. `onProgress` receives pictures of the first item as they form: the grid
    /// so far (AR: after each row, with the rows still to come grey) or the prediction of the
    /// clean latent (diffusion: at about ten of the steps and the last).
    func sample(text: [Int32], sampling: SamplingArguments, seed: UInt64, keep: [Int32]? = nil,
                onProgress: ((Image) -> Void)? = nil) -> [Int32] {
        var rng = RandomGenerator(seed: seed)
        switch prior {
        case .ar(let prior):
            let n = prior.config.imageLength
            return prior.sample(text: text, options: sampling.options, rng: &rng, keep: keep, onRow: { row, tokens in
                guard let onProgress else { return }
                onProgress(partialPicture(tokens: Array(tokens.prefix(n)), rows: row + 1))
            })
        case .diffusion(let prior):
            let d = prior.config.latentChannels, codes = autoencoder.quantizer.codeVectors()
            let known = keep.map { keep in
                (latent: prior.normalize(keep.flatMap { $0 >= 0 ? Array(codes[Int($0) * d..<(Int($0) + 1) * d]) : [Float](repeating: 0, count: d) }),
                 known: keep.map { $0 >= 0 })
            }
            let options = sampling.diffusionOptions
            let every = max(1, options.steps / 10)
            let latents = prior.sample(text: text, options: options, rng: &rng, keep: known, codeVectors: codes, onStep: { step, clean in
                guard let onProgress, step % every == 0 || step == options.steps - 1 else { return }
                onProgress(picture(latent: prior.denormalize(Array(clean.prefix(prior.config.imageLength * d)))))
            })
            var tokens = snapToCodes(prior.denormalize(latents), codeVectors: codes, dimension: d)
            if let keep { for i in tokens.indices where keep[i] >= 0 { tokens[i] = keep[i] } }
            return tokens
        }
    }

    func draw(_ tokens: [Int32], count: Int) -> [Image] {
        let size = autoencoder.config.imageSize, plane = 3 * size * size
        let pictures = autoencoder.pictures(tokens: tokens, batch: count)  // (N, 3, H, W)
        return (0..<count).map { imageFromPlanar(pictures.data + $0 * plane, width: size, height: size) }
    }

    /// One continuous latent (h·w·D, channels last, the codes' scale) drawn by the decoder.
    func picture(latent: [Float]) -> Image {
        let (h, w, d) = (prior.grid.height, prior.grid.width, autoencoder.config.codeDimension)
        let tape = Tape()
        defer { tape.reset() }
        let planar = tape.channelsFirst(Tensor(shape: [1, h, w, d], values: latent))  // (1, D, h, w)
        let drawn = autoencoder.decode(tape, planar)  // (1, 3, H, W)
        return imageFromPlanar(drawn.data, width: autoencoder.config.imageSize, height: autoencoder.config.imageSize)
    }

    /// The picture of a grid's first `rows` rows, the rest left grey.
    func partialPicture(tokens: [Int32], rows: Int) -> Image {
        var image = draw(tokens, count: 1)[0]
        let pixelRows = rows * autoencoder.config.downsampling
        for y in pixelRows..<image.height {
            for x in 0..<image.width { image.set(x: x, y: y, to: [128, 128, 128]) }
        }
        return image
    }
}

/// One line of manifest.jsonl: prompt, file, prior, seed, settings, seconds, the scorer's score.
func manifestLine(prompt: String, file: String, sampling: SamplingArguments, seed: UInt64, index: Int, seconds: Double,
                  score: Double?) -> String {
    "{\"prompt\":\(jsonString(prompt)),\"file\":\(jsonString(file)),\"prior\":\"\(sampling.prior.rawValue)\","
        + "\"seed\":\(seed),\"index\":\(index),\(sampling.manifestFields),"
        + (sampling.rerank.map { "\"rerank\":\($0)," } ?? "")
        + "\"seconds\":\(String(format: "%.3f", seconds))"
        + (score.map { ",\"score\":\(String(format: "%.3f", $0))" } ?? "") + "}\n"
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate pictures from a prompt (or a file of prompts) with a model's prior.")

    @Argument(help: "What to draw.")
    var prompt: String?
    @Option(help: "A file of prompts, one per line (with --out-dir).")
    var prompts: String?
    @Option(name: .customLong("out-dir"), help: "Folder for --prompts: pictures and manifest.jsonl.")
    var outDirectory: String?
    @OptionGroup var model: ModelOption
    @OptionGroup var sampling: SamplingArguments
    @Option(help: "Pictures per prompt (drawn as one batch; a grid when more than one).")
    var count = 1
    @Option(help: "The PNG to write (single prompt).")
    var out = "tessera.png"
    @Flag(name: .customLong("show-tokens"), help: "Print each token grid as text.")
    var showTokens = false
    @Flag(help: "Show the picture in the terminal.")
    var preview = false
    @Option(help: "Write a strip of the picture as it forms: the rows as they arrive (AR), the predicted clean picture every few steps (diffusion). Single prompt.")
    var progress: String?
    @Option(help: "With --prompts: also write one PNG of every picture at 2× with its prompt under it (a gallery; each prompt's pictures side by side).")
    var sheet: String?

    func validate() throws {
        guard (1...64).contains(count) else { throw ValidationError("--count must be 1…64") }
        switch (prompt, prompts) {
        case (nil, nil): throw ValidationError("give a PROMPT, or --prompts FILE with --out-dir DIR")
        case (.some, .some): throw ValidationError("give a PROMPT or --prompts FILE, not both")
        case (nil, .some): if outDirectory == nil { throw ValidationError("--prompts needs --out-dir DIR") }
        default: break
        }
        if sheet != nil && prompts == nil { throw ValidationError("--sheet goes with --prompts FILE") }
    }

    func run() throws {
        let loaded = try LoadedModel(model, sampling: sampling)
        if let prompt {
            var strip: [Image] = []
            let start = Date()
            let (images, tokens, scores) = try loaded.generate(prompt, count: count, sampling: sampling, seed: sampling.seed,
                                                               onProgress: progress == nil ? nil : { strip.append($0) })
            let picture = count == 1 ? images[0] : ContactSheet.make(images, padding: 2)
            try picture.writePNG(to: out)
            if let progress { try ContactSheet.make(strip, columns: strip.count, padding: 1).writePNG(to: progress) }
            if showTokens { printGrids(loaded, tokens) }
            if preview { print(TerminalPreview.render(picture, columns: 64, rows: 32), terminator: "") }
            let scored = scores.map { ", scorer: " + $0.map { String(format: "%.1f", $0) }.joined(separator: " ") } ?? ""
            say(String(format: "wrote %@ (%d picture%@, %.2f s%@)", out, count, count == 1 ? "" : "s", Date().timeIntervalSince(start), scored))
            return
        }
        guard let prompts, let outDirectory else { return }
        let lines = try readPrompts(prompts)
        for line in lines { _ = try loaded.captionIds(line) }  // every prompt checked before any picture is drawn (it warns when drawn)
        try makeOutputDirectory(outDirectory)
        var manifest = ""
        var gallery: [Image] = []
        for (index, line) in lines.enumerated() {
            let seed = sampling.seed &+ UInt64(index)
            let start = Date()
            let (images, tokens, scores) = try loaded.generate(line, count: count, sampling: sampling, seed: seed)
            let seconds = Date().timeIntervalSince(start)
            for (k, image) in images.enumerated() {
                if sheet != nil { gallery.append(image.zoomed(by: 2)) }
                let name = String(format: "%04d-%02d.png", index, k)
                try image.writePNG(to: (outDirectory as NSString).appendingPathComponent(name))
                manifest += manifestLine(prompt: line, file: name, sampling: sampling, seed: seed, index: k,
                                         seconds: seconds / Double(count), score: scores?[k])
            }
            if showTokens { printGrids(loaded, tokens) }
        }
        try AtomicFile.write(Data(manifest.utf8), to: (outDirectory as NSString).appendingPathComponent("manifest.jsonl"))
        if let sheet {
            let captions = lines.flatMap { [String](repeating: $0, count: count) }
            try ContactSheet.make(gallery, captions: captions, columns: count * max(1, 6 / count)).writePNG(to: sheet)
        }
        say("wrote \(lines.count * count) pictures and manifest.jsonl to \(outDirectory)")
    }

    func printGrids(_ loaded: LoadedModel, _ tokens: [Int32]) {
        let (h, w, k) = loaded.prior.grid
        for item in 0..<(tokens.count / (h * w)) {
            let grid = TokenGrid(height: h, width: w, codebookSize: k, tokens: Array(tokens[item * h * w..<(item + 1) * h * w]))
            print(grid.text(modelName: loaded.manifest.name), terminator: "")
        }
    }
}

struct Complete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep the first rows of a picture's token grid and let the prior write the rest.")

    @Argument(help: "The picture to complete (PNG).")
    var image: String
    @Argument(help: "What the whole picture shows.")
    var prompt: String
    @Option(name: .customLong("keep-rows"), help: "Token grid rows kept from the picture.")
    var keepRows: Int
    @OptionGroup var model: ModelOption
    @OptionGroup var sampling: SamplingArguments
    @Option(help: "The PNG to write.")
    var out = "completed.png"

    func run() throws {
        let loaded = try LoadedModel(model, sampling: sampling)
        let (height, width, _) = loaded.prior.grid
        guard keepRows >= 0 && keepRows <= height else {
            throw TesseraError("--keep-rows \(keepRows) is beyond the \(height)-row grid of this model")
        }
        let given = loaded.autoencoder.tokens(picture: try Image(contentsOfPNG: image))
        let keep = given.enumerated().map { $0.offset < keepRows * width ? $0.element : -1 }
        let tokens = loaded.sample(text: try loaded.textTokens(prompt), sampling: sampling, seed: sampling.seed, keep: keep)
        try loaded.draw(tokens, count: 1)[0].writePNG(to: out)
        say("wrote \(out) (kept \(keepRows) of \(height) rows)")
    }
}
