// `tessera train PART`: trains one part of a model from a dataset folder. Parts appear here as
// they are built.
import ArgumentParser
import Foundation
import TesseraData
import TesseraText

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one part of a model from a dataset folder.",
        subcommands: [TrainTokenizer.self, TrainAutoencoder.self, TrainAR.self, TrainDiffusion.self, TrainScorer.self])
}

struct TrainTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Learn a byte-level BPE vocabulary (vocab.json + merges.txt) from a dataset's captions.")

    @Option(help: "Dataset folder of NAME.png + NAME.txt pairs.")
    var data: String

    @Option(name: .customLong("vocab-size"), help: "Tokens in all: 256 bytes, the merges, 3 special tokens.")
    var vocabularySize: Int = 1024

    @Option(name: [.customLong("out"), .customLong("model-dir")], help: "Folder for vocab.json and merges.txt.")
    var out: String

    func validate() throws {
        guard vocabularySize >= 259 && vocabularySize <= 65_536 else {
            throw ValidationError("--vocab-size must be between 259 (256 bytes + 3 special tokens) and 65,536")
        }
    }

    func run() throws {
        let dataset = try FolderDataset(directory: data)
        let captions = dataset.allCaptions
        let tokenizer = BPETokenizer.train(captions: captions, vocabularySize: vocabularySize)
        try makeOutputDirectory(out)
        try tokenizer.write(to: out)
        let lengths = captions.map { tokenizer.encode($0).count }
        let stopped = tokenizer.vocabularySize < vocabularySize ? " (no pair occurs twice any more)" : ""
        print("learnt \(tokenizer.merges.count) merges from \(captions.count) captions: \(tokenizer.vocabularySize) tokens\(stopped)")
        print("caption length in tokens: mean \(String(format: "%.1f", Double(lengths.reduce(0, +)) / Double(lengths.count))), longest \(lengths.max() ?? 0)")
        print("wrote \(out)/\(BPETokenizer.vocabularyFileName) and \(BPETokenizer.mergesFileName)")
    }
}
