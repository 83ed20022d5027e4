// `tessera tokens`, `tessera decode` and `tessera codebook`: a picture to its token grid as text
// or JSON, a token grid back to a picture, and the picture of a model's codebook. The model is
// a folder or the name of a shipped sample model (DESIGN.md's command line).
import ArgumentParser
import Foundation
import TesseraData
import TesseraImage
import TesseraModels
import TesseraTensor

struct ModelOption: ParsableArguments {
    @Option(help: "A model folder, or the name of a shipped sample model (shapes, emoji).")
    var model = "emoji"

    /// The model folder: the path itself when it is a folder, else Samples/models/NAME found
    /// from the working directory or from where the tool was built. A bare name that is also a
    /// folder here without a model.json (a dataset made with `--out emoji`, say) still means the
    /// shipped model when there is one.
    func directory() throws -> String {
        var isDirectory: ObjCBool = false
        let isFolder = FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) && isDirectory.boolValue
        let isModel = FileManager.default.fileExists(atPath: (model as NSString).appendingPathComponent("model.json"))
        if isFolder && (isModel || model.contains("/")) { return model }
        guard !model.contains("/") else { throw TesseraError("no such model folder", path: model) }
        if let shipped = shippedModel() { return shipped }
        if isFolder { return model }  // not a model: loading it says so, naming the folder
        throw TesseraError("no model called '\(model)': not a folder, and no Samples/models/\(model) beside the tool or here", path: nil)
    }

    /// Samples/models/NAME, searched upwards from the working directory and from the tool's own folder.
    private func shippedModel() -> String? {
        var isDirectory: ObjCBool = false
        let relative = "Samples/models/" + model
        var starts = [FileManager.default.currentDirectoryPath]
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        starts.append(executable.deletingLastPathComponent().path)
        for start in starts {
            var folder = URL(fileURLWithPath: start)
            for _ in 0..<6 {
                let candidate = folder.appendingPathComponent(relative).path
                if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue {
                    return candidate
                }
                folder.deleteLastPathComponent()
            }
        }
        return nil
    }

    func autoencoder() throws -> (Autoencoder, ModelManifest) {
        try Autoencoder.load(modelDirectory: directory())
    }
}

enum GridFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct Tokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a picture's token grid under a model's image tokenizer.")

    @Argument(help: "A PNG picture (resized to the model's picture size when it differs).")
    var image: String
    @OptionGroup var model: ModelOption
    @Option(help: "text (one row of ids per line) or json.")
    var format: GridFormat = .text

    func run() throws {
        let (autoencoder, manifest) = try model.autoencoder()
        let side = autoencoder.config.gridSize
        let codes = autoencoder.tokens(picture: try Image(contentsOfPNG: image))
        let grid = TokenGrid(height: side, width: side, codebookSize: autoencoder.config.codebookSize, tokens: codes)
        print(format == .text ? grid.text(modelName: manifest.name) : grid.json(), terminator: "")
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a token grid (the text `tessera tokens` prints) as a PNG.")

    @Argument(help: "A token grid text file.")
    var grid: String
    @Option(help: "The PNG to write.")
    var out: String
    @OptionGroup var model: ModelOption

    func run() throws {
        let (autoencoder, _) = try model.autoencoder()
        guard let data = FileManager.default.contents(atPath: grid) else { throw TesseraError("cannot read the token grid", path: grid) }
        guard data.count <= 1 << 20 else { throw TesseraError("is larger than 1 MiB: not a token grid", path: grid) }
        guard let text = String(data: data, encoding: .utf8) else { throw TesseraError("is not UTF-8 text", path: grid) }
        let side = autoencoder.config.gridSize
        let parsed = try TokenGrid.parse(text, path: grid, height: side, width: side, codebookSize: autoencoder.config.codebookSize)
        let size = autoencoder.config.imageSize
        let drawn = autoencoder.pictures(tokens: parsed.tokens, batch: 1)  // (1, 3, H, W)
        try imageFromPlanar(drawn.data, width: size, height: size).writePNG(to: out)
        print("wrote \(out)")
    }
}

struct Codebook: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw every code of a model's codebook as its decoded patch.")

    @OptionGroup var model: ModelOption
    @Option(help: "The PNG to write.")
    var out: String
    @Option(help: "Enlargement of each patch.")
    var zoom = 4

    func validate() throws {
        guard (1...16).contains(zoom) else { throw ValidationError("--zoom must be 1…16") }
    }

    func run() throws {
        let (autoencoder, _) = try model.autoencoder()
        try autoencoder.codebookPicture(zoom: zoom).writePNG(to: out)
        print("wrote \(out): \(autoencoder.config.codebookSize) codes, \(autoencoder.config.downsampling)×\(autoencoder.config.downsampling) px each")
    }
}
