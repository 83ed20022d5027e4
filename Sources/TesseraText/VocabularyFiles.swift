// The GPT-2 file pair: `vocab.json` (token string → id, written in id order) and `merges.txt`
// ("#version: 0.2", then one "left right" pair of token strings per line, in rank order).
// Reading checks everything a corrupt or hand-edited pair could get wrong.
import Foundation
import TesseraTensor

extension BPETokenizer {
    public static let vocabularyFileName = "vocab.json"
    public static let mergesFileName = "merges.txt"

    /// Writes vocab.json and merges.txt into `directory` (created if missing), each atomically.
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let entries = tokens.enumerated().map { "  \(jsonString($0.element)): \($0.offset)" }
        let vocabulary = "{\n" + entries.joined(separator: ",\n") + "\n}\n"
        let mergeLines = merges.map { "\(tokens[$0.0]) \(tokens[$0.1])" }
        let mergesText = (["#version: 0.2"] + mergeLines).joined(separator: "\n") + "\n"
        try AtomicFile.write(Data(vocabulary.utf8), to: (directory as NSString).appendingPathComponent(Self.vocabularyFileName))
        try AtomicFile.write(Data(mergesText.utf8), to: (directory as NSString).appendingPathComponent(Self.mergesFileName))
    }

    /// Reads the pair from `directory`. The merges define the vocabulary; vocab.json must agree
    /// with them id for id.
    public init(directory: String) throws {
        let vocabularyPath = (directory as NSString).appendingPathComponent(Self.vocabularyFileName)
        let mergesPath = (directory as NSString).appendingPathComponent(Self.mergesFileName)
        func read(_ path: String) throws -> Data {
            guard let data = FileManager.default.contents(atPath: path) else { throw TesseraError("missing or unreadable", path: path) }
            guard data.count <= 64 << 20 else { throw TesseraError("larger than 64 MB", path: path) }
            return data
        }
        guard let mergesText = String(data: try read(mergesPath), encoding: .utf8) else {
            throw TesseraError("not UTF-8 text", path: mergesPath)
        }
        var byString = Dictionary(uniqueKeysWithValues: ByteLevel.characters.enumerated().map { (String($0.element), $0.offset) })
        var merges = [(Int, Int)]()
        for (number, line) in mergesText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || (number == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, let left = byString[String(parts[0])], let right = byString[String(parts[1])] else {
                throw TesseraError("line \(number + 1) is not a merge of two known tokens: \(line.prefix(60))", path: mergesPath)
            }
            let merged = String(parts[0]) + String(parts[1])
            guard byString[merged] == nil else { throw TesseraError("line \(number + 1) repeats the token \(merged)", path: mergesPath) }
            byString[merged] = 256 + merges.count
            merges.append((left, right))
        }
        self.init(merges: merges)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: try read(vocabularyPath)) } catch let error as TesseraError {
            throw error
        } catch {
            throw TesseraError("not valid JSON", path: vocabularyPath)
        }
        guard let vocabulary = json as? [String: Any] else { throw TesseraError("not a JSON object", path: vocabularyPath) }
        guard vocabulary.count == tokens.count else {
            throw TesseraError("\(vocabulary.count) tokens, but \(Self.mergesFileName) and the special tokens make \(tokens.count)",
                               path: vocabularyPath)
        }
        for (id, token) in tokens.enumerated() where (vocabulary[token] as? Int) != id {
            throw TesseraError("token \(jsonString(token)) should have id \(id)", path: vocabularyPath)
        }
    }
}
