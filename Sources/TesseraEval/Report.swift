// The figures of one prior on a set of prompts, as `tessera eval` prints them and `tessera
// compare` writes them to report.json / report.md. Every figure that cannot be had (no scorer,
// prompts that are not Shapes captions, no real pictures to compare with) is null, never a
// stand-in value.
import Foundation
import TesseraData
import TesseraImage

/// Per-attribute accuracies of the Shapes checker, as shares.
public struct AttributeAccuracy: Codable, Equatable, Sendable {
    public var color, shape, size, position, count, background: Double

    public init(_ score: Shapes.Score) {
        let objects = Double(max(1, score.objects)), images = Double(max(1, score.images))
        color = Double(score.color) / objects
        shape = Double(score.shape) / objects
        size = Double(score.size) / objects
        position = Double(score.position) / objects
        count = Double(score.objectCount) / images
        background = Double(score.background) / images
    }
}

public struct PriorFigures: Codable, Equatable, Sendable {
    public var images: Int
    /// Share read back exactly as the prompt by the Shapes checker; null unless every prompt
    /// is a Shapes caption and the pictures are 64 px.
    public var exactMatch: Double?
    public var attributes: AttributeAccuracy?
    /// Mean CLIP score (100 · cosine, clipped at 0) of each picture with its prompt.
    public var clipScore: Double?
    /// Share of pictures whose prompt the scorer ranks first among it and `rPrecisionCandidates − 1` others.
    public var rPrecision: Double?
    public var rPrecisionCandidates: Int?
    /// Fréchet distance on Tessera scorer features (not Inception FID) to `fidReference` real pictures.
    public var fid: Double?
    public var fidReference: Int?
    /// Round-trip PSNR (dB) of the real pictures through the autoencoder, when there are any.
    public var reconstructionPSNR: Double?
    public var secondsPerImage: Double
    /// The prior's sampling settings, as generate's manifest records them.
    public var settings: [String: Double]

    enum CodingKeys: String, CodingKey {
        case images, attributes, settings
        case exactMatch = "exact_match", clipScore = "clip_score", rPrecision = "r_precision"
        case rPrecisionCandidates = "r_precision_candidates", fid, fidReference = "fid_reference"
        case reconstructionPSNR = "reconstruction_psnr", secondsPerImage = "seconds_per_image"
    }

    /// Writes every field, nulls included, so a reader always finds each key.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(images, forKey: .images)
        try c.encode(exactMatch, forKey: .exactMatch)
        try c.encode(attributes, forKey: .attributes)
        try c.encode(clipScore, forKey: .clipScore)
        try c.encode(rPrecision, forKey: .rPrecision)
        try c.encode(rPrecisionCandidates, forKey: .rPrecisionCandidates)
        try c.encode(fid, forKey: .fid)
        try c.encode(fidReference, forKey: .fidReference)
        try c.encode(reconstructionPSNR, forKey: .reconstructionPSNR)
        try c.encode(secondsPerImage, forKey: .secondsPerImage)
        try c.encode(settings, forKey: .settings)
    }
}

/// What the figures are computed from.
public struct EvaluationInput {
    /// The prompt of each picture.
    public var prompts: [String]
    public var pictures: [Image]
    public var secondsPerImage: Double
    public var settings: [String: Double]
    /// Unit scorer features of the pictures (N, E), of each picture's prompt (as rows of
    /// `captionFeatures`: `promptRows`), and of the caption pool R-precision draws from.
    public var scorer: (dimension: Int, pictures: [Float], captionFeatures: [Float], promptRows: [Int])?
    /// Unit scorer features of real pictures for the Fréchet distance.
    public var referenceFeatures: [Float]?
    public var reconstructionPSNR: Double?

    public init(prompts: [String], pictures: [Image], secondsPerImage: Double, settings: [String: Double]) {
        self.prompts = prompts
        self.pictures = pictures
        self.secondsPerImage = secondsPerImage
        self.settings = settings
    }
}

extension PriorFigures {
    public init(_ input: EvaluationInput, seed: UInt64 = 0) throws {
        images = input.pictures.count
        secondsPerImage = input.secondsPerImage
        settings = input.settings
        reconstructionPSNR = input.reconstructionPSNR
        if input.prompts.allSatisfy({ Shapes.parse(caption: $0) != nil }),
           input.pictures.allSatisfy({ $0.width == Shapes.canvasSide && $0.height == Shapes.canvasSide }) {
            var score = Shapes.Score()
            for (prompt, picture) in zip(input.prompts, input.pictures) { score.add(caption: prompt, image: picture) }
            exactMatch = score.exactAccuracy
            attributes = AttributeAccuracy(score)
        }
        if let scorer = input.scorer {
            let e = scorer.dimension
            let prompts = scorer.promptRows.flatMap { Array(scorer.captionFeatures[$0 * e..<($0 + 1) * e]) }
            let scores = Metrics.clipScores(images: scorer.pictures, texts: prompts, dimension: e)
            clipScore = scores.reduce(0, +) / Double(max(1, scores.count))
            let r = Metrics.rPrecision(images: scorer.pictures, truth: scorer.promptRows, captions: scorer.captionFeatures,
                                       dimension: e, seed: seed)
            (rPrecision, rPrecisionCandidates) = (r.value, r.candidates)
            if let reference = input.referenceFeatures, reference.count >= 2 * e, scorer.pictures.count >= 2 * e {
                let generated = GaussianStatistics(features: scorer.pictures, dimension: e)
                fid = try generated.frechetDistance(to: GaussianStatistics(features: reference, dimension: e))
                fidReference = reference.count / e
            }
        }
    }

    /// The table rows `eval` prints and report.md holds: (figure, value).
    public var rows: [(String, String)] {
        func share(_ x: Double?) -> String { x.map { String(format: "%.1f %%", 100 * $0) } ?? "—" }
        func number(_ x: Double?, _ format: String) -> String { x.map { String(format: format, $0) } ?? "—" }
        var rows: [(String, String)] = [
            ("pictures", "\(images)"),
            ("Shapes exact match", share(exactMatch)),
        ]
        if let a = attributes {
            rows.append(("  colour / shape / size", "\(share(a.color)) / \(share(a.shape)) / \(share(a.size))"))
            rows.append(("  position / count / background", "\(share(a.position)) / \(share(a.count)) / \(share(a.background))"))
        }
        rows += [
            ("CLIP score (Tessera scorer)", number(clipScore, "%.2f")),
            ("R-precision" + (rPrecisionCandidates.map { " (1 of \($0))" } ?? ""), share(rPrecision)),
            ("FID on scorer features" + (fidReference.map { " (vs \($0) real)" } ?? ""), number(fid, "%.4f")),
            ("reconstruction PSNR", number(reconstructionPSNR, "%.2f dB")),
            ("seconds per picture", String(format: "%.3f", secondsPerImage)),
        ]
        return rows
    }
}

/// A plain-text table: a header row, then rows of cells, columns padded to their widest cell.
public func textTable(_ header: [String], _ rows: [[String]], markdown: Bool = false) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        let padded = zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
        return markdown ? "| " + padded.joined(separator: " | ") + " |" : padded.joined(separator: "  ")
    }
    var lines = [line(header)]
    if markdown { lines.append("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|") }
    lines += rows.map(line)
    return lines.joined(separator: "\n") + "\n"
}
