// `tessera generate`: pictures from prompts with a model's prior, one prompt or a file of
// prompts (with manifest.jsonl). `tessera complete` keeps the first rows of a picture's token
// grid and lets the prior write the rest (DALL-E's image completion).
import ArgumentParser
import Foundation
import TesseraData
import TesseraImage
import TesseraModels
import TesseraTensor
import TesseraText

enum PriorKind: String, ExpressibleByArgument, CaseIterable {
    case ar, diffusion
}

struct SamplingArguments: ParsableArguments {
    @Option(help: "Which prior writes the token grid: ar or diffusion.")
    var prior: PriorKind = .ar
    @Option(help: "Seed; the same seed gives the same picture.")
    var seed: UInt64 = 0
    @Option(help: "Sampling temperature (0 picks the most likely code).")
    var temperature: Float = 0.7
    @Option(name: .customLong("top-k"), help: "Sample among the k most likely codes (0: all).")
    var topK = 8
    @Option(name: .customLong("top-p"), help: "Sample within the smallest set of codes of this total probability (1: all).")
    var topP: Float = 1
    @Option(help: "Classifier-free guidance scale (1: none).")
    var guidance: Float = 1
    @Option(help: "Denoising steps (diffusion prior only).")
    var steps: Int?
    @Option(help: "Draw N candidates and keep the one the scorer ranks best.")
    var rerank: Int?

    func validate() throws {
        guard temperature >= 0 && temperature <= 10 else { throw ValidationError("--temperature must be 0…10") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard guidance >= 0 && guidance <= 30 else { throw ValidationError("--guidance must be 0…30") }
        if let steps, steps < 1 || steps > 10_000 { throw ValidationError("--steps must be 1…10,000") }
        if let rerank, rerank < 1 || rerank > 256 { throw ValidationError("--rerank must be 1…256") }
    }

    var options: SamplingOptions {
        SamplingOptions(temperature: temperature, topK: topK, topP: topP, guidance: guidance)
    }
}

/// A model's parts for AR generation, loaded once.
struct LoadedModel {
    let directory: String
    let manifest: ModelManifest
    let autoencoder: Autoencoder
    let prior: ARPrior
    let tokenizer: BPETokenizer

    init(_ option: ModelOption, sampling: SamplingArguments) throws {
        directory = try option.directory()
        (autoencoder, manifest) = try Autoencoder.load(modelDirectory: directory)
        if sampling.prior == .diffusion {
            throw TesseraError("this model has no diffusion prior; train one with `tessera train diffusion --data DIR --model-dir \(directory)`",
                               path: directory)
        }
        if sampling.steps != nil { throw TesseraError("--steps applies to the diffusion prior only") }
        if sampling.rerank != nil {
            throw TesseraError("--rerank needs a scorer, and this model has none; train one with `tessera train scorer`", path: directory)
        }
        prior = try ARPrior.load(modelDirectory: directory, manifest: manifest)
        guard let named = manifest.tokenizer else { throw TesseraError("model.json names no text tokenizer", path: directory) }
        tokenizer = try BPETokenizer(directory: (directory as NSString).appendingPathComponent(named))
    }

    /// The prompt's text tokens, or an error for an empty prompt; a long one is cut with a warning.
    func textTokens(_ prompt: String) throws -> [Int32] {
        let normalized = normalizeCaption(prompt)
        guard !normalized.isEmpty else { throw TesseraError("the prompt is empty; say what to draw, e.g. \"a red circle\"") }
        let ids = tokenizer.encode(normalized)
        let length = prior.config.textLength
        if ids.count > length {
            let kept = tokenizer.decode(Array(ids.prefix(length)))
            FileHandle.standardError.write(Data("warning: the prompt is \(ids.count) tokens, the model reads \(length); using \"\(kept)\"\n".utf8))
        }
        return prior.textTokens(ids.prefix(length).map { Int32($0) })
    }

    func draw(_ tokens: [Int32], count: Int) -> [Image] {
        let size = autoencoder.config.imageSize, plane = 3 * size * size
        let pictures = autoencoder.pictures(tokens: tokens, batch: count)  // (N, 3, H, W)
        return (0..<count).map { imageFromPlanar(pictures.data + $0 * plane, width: size, height: size) }
    }
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
    @Option(help: "Write a strip of the picture as its rows arrive (single prompt).")
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
            let tokens = try sample(loaded, prompt: prompt, seed: sampling.seed) { row, partial in
                guard progress != nil else { return }
                strip.append(partialPicture(loaded, tokens: partial, rows: row + 1))
            }
            let images = loaded.draw(tokens, count: count)
            let picture = count == 1 ? images[0] : ContactSheet.make(images, padding: 2)
            try picture.writePNG(to: out)
            if let progress { try ContactSheet.make(strip, columns: strip.count, padding: 1).writePNG(to: progress) }
            if showTokens { printGrids(loaded, tokens) }
            if preview { print(TerminalPreview.render(picture, columns: 64, rows: 32), terminator: "") }
            say(String(format: "wrote %@ (%d picture%@, %.2f s)", out, count, count == 1 ? "" : "s", Date().timeIntervalSince(start)))
            return
        }
        guard let prompts, let outDirectory else { return }
        guard let data = FileManager.default.contents(atPath: prompts), let text = String(data: data, encoding: .utf8) else {
            throw TesseraError("cannot read the prompts file", path: prompts)
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw TesseraError("holds no prompts", path: prompts) }
        for line in lines { _ = try loaded.textTokens(line) }  // every prompt checked before any picture is drawn
        try makeOutputDirectory(outDirectory)
        var manifest = ""
        var gallery: [Image] = []
        for (index, line) in lines.enumerated() {
            let seed = sampling.seed &+ UInt64(index)
            let start = Date()
            let tokens = try sample(loaded, prompt: line, seed: seed) { _, _ in }
            let seconds = Date().timeIntervalSince(start)
            for (k, image) in loaded.draw(tokens, count: count).enumerated() {
                if sheet != nil { gallery.append(image.zoomed(by: 2)) }
                let name = String(format: "%04d-%02d.png", index, k)
                try image.writePNG(to: (outDirectory as NSString).appendingPathComponent(name))
                manifest += "{\"prompt\":\(jsonString(line)),\"file\":\(jsonString(name)),\"prior\":\"ar\",\"seed\":\(seed),"
                    + "\"index\":\(k),\"temperature\":\(sampling.temperature),\"top_k\":\(sampling.topK),\"top_p\":\(sampling.topP),"
                    + "\"guidance\":\(sampling.guidance),\"seconds\":\(String(format: "%.3f", seconds / Double(count)))}\n"
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

    func sample(_ loaded: LoadedModel, prompt: String, seed: UInt64, onRow: @escaping (Int, [Int32]) -> Void) throws -> [Int32] {
        let text = try loaded.textTokens(prompt)
        var rng = RandomGenerator(seed: seed)
        return loaded.prior.sample(text: [Int32]((0..<count).flatMap { _ in text }), options: sampling.options, rng: &rng,
                                   onRow: { row, tokens in onRow(row, Array(tokens.prefix(loaded.prior.config.imageLength))) })
    }

    func printGrids(_ loaded: LoadedModel, _ tokens: [Int32]) {
        let n = loaded.prior.config.imageLength
        for k in 0..<(tokens.count / n) {
            let grid = TokenGrid(height: loaded.prior.config.gridHeight, width: loaded.prior.config.gridWidth,
                                 codebookSize: loaded.prior.config.codebookSize, tokens: Array(tokens[k * n..<(k + 1) * n]))
            print(grid.text(modelName: loaded.manifest.name), terminator: "")
        }
    }
}

/// The first picture of a batch drawn from its first `rows` grid rows, the rest left grey.
func partialPicture(_ loaded: LoadedModel, tokens: [Int32], rows: Int) -> Image {
    var image = loaded.draw(tokens, count: 1)[0]
    let pixelRows = rows * loaded.autoencoder.config.downsampling
    for y in pixelRows..<image.height {
        for x in 0..<image.width { image.set(x: x, y: y, to: [128, 128, 128]) }
    }
    return image
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
        let (height, width) = (loaded.prior.config.gridHeight, loaded.prior.config.gridWidth)
        guard keepRows >= 0 && keepRows <= height else {
            throw TesseraError("--keep-rows \(keepRows) is beyond the \(height)-row grid of this model")
        }
        let given = loaded.autoencoder.tokens(picture: try Image(contentsOfPNG: image))
        let keep = given.enumerated().map { $0.offset < keepRows * width ? $0.element : -1 }
        var rng = RandomGenerator(seed: sampling.seed)
        let tokens = loaded.prior.sample(text: try loaded.textTokens(prompt), options: sampling.options, rng: &rng, keep: keep)
        try loaded.draw(tokens, count: 1)[0].writePNG(to: out)
        say("wrote \(out) (kept \(keepRows) of \(height) rows)")
    }
}
