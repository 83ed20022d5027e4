// A token grid as text (DESIGN.md, "Token grid as text"): a version comment, a comment naming
// the model, grid and codebook, then one line of right-aligned ids per row. Parsing accepts
// any comments and spacing but rejects ragged rows, ids out of range and wrong sizes, naming
// the line.
import Foundation
import TesseraTensor

public struct TokenGrid: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var codebookSize: Int
    /// Row-major ids, each in 0..<codebookSize.
    public var tokens: [Int32]

    public init(height: Int, width: Int, codebookSize: Int, tokens: [Int32]) {
        precondition(tokens.count == height * width, "TokenGrid: \(tokens.count) tokens for \(height)×\(width)")
        self.height = height
        self.width = width
        self.codebookSize = codebookSize
        self.tokens = tokens
    }

    public static let header = "# tessera token grid v1"

    public func text(modelName: String) -> String {
        let digits = String(max(0, codebookSize - 1)).count
        var lines = [TokenGrid.header, "# model: \(modelName)  grid: \(height)x\(width)  codebook: \(codebookSize)"]
        for row in 0..<height {
            lines.append(tokens[row * width..<(row + 1) * width].map { id in
                let text = String(id)
                return String(repeating: " ", count: max(0, digits - text.count)) + text
            }.joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public func json() -> String {
        let rows = (0..<height).map { row in
            "[" + tokens[row * width..<(row + 1) * width].map(String.init).joined(separator: ",") + "]"
        }
        return "{\"grid\":[\(height),\(width)],\"codebook\":\(codebookSize),\"tokens\":[\(rows.joined(separator: ","))]}\n"
    }

    /// Reads the text format for a model whose grid is height × width with `codebookSize` codes.
    public static func parse(_ text: String, path: String, height: Int, width: Int, codebookSize: Int) throws -> TokenGrid {
        var tokens: [Int32] = []
        var rows = 0
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            func fail(_ problem: String) -> TesseraError { TesseraError("line \(lineNumber): \(problem)", path: path) }
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard rows < height else { throw fail("row \(rows + 1), but the grid has only \(height) rows") }
            guard fields.count == width else {
                throw fail("row \(rows + 1) has \(fields.count) ids, the grid is \(width) wide")
            }
            for field in fields {
                guard let id = Int(field) else { throw fail("'\(field.prefix(20))' is not a token id") }
                guard id >= 0 && id < codebookSize else {
                    throw fail("token \(id) is outside the codebook (0…\(codebookSize - 1))")
                }
                tokens.append(Int32(id))
            }
            rows += 1
        }
        guard rows == height else { throw TesseraError("has \(rows) rows of tokens, the grid needs \(height)", path: path) }
        return TokenGrid(height: height, width: width, codebookSize: codebookSize, tokens: tokens)
    }
}
