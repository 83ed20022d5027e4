// Byte-level BPE: the GPT-2 pre-tokenizer's splits, training on a small fixed corpus to known
// merges and ids, exact round trips on random Unicode, and the vocabulary files.
import Foundation
import Testing
import TesseraText

@Suite struct BytePairEncoding {
    let corpus = ["a small red circle", "a large red square", "a small blue circle on the left",
                  "a large blue circle", "the red circle"]

    @Test func preTokenizerFollowsGPT2() {
        #expect(PreTokenizer.split("hello world") == ["hello", " world"])
        #expect(PreTokenizer.split("it's 42 cats!!") == ["it", "'s", " 42", " cats", "!!"])
        #expect(PreTokenizer.split("a  b") == ["a", " ", " b"])
        #expect(PreTokenizer.split("end  ") == ["end", "  "])
        #expect(PreTokenizer.split("x\ny") == ["x", "\n", "y"])
        #expect(PreTokenizer.split("naïve 日本語 😀😀") == ["naïve", " 日本語", " 😀😀"])
    }

    @Test func byteTokensUseGPT2StandIns() {
        let tokens = BPETokenizer.train(captions: [], vocabularySize: 300).tokens
        #expect(tokens.count == 259)
        #expect(tokens[Int(UInt8(ascii: " "))] == "Ġ" && tokens[Int(UInt8(ascii: "\n"))] == "Ċ")
        #expect(tokens[Int(UInt8(ascii: "a"))] == "a" && tokens[0xAD] == "Ń")
        #expect(Set(tokens.prefix(256)).count == 256)
    }

    @Test func trainingLearnsTheFrequentPairsFirst() {
        let tokenizer = BPETokenizer.train(captions: corpus, vocabularySize: 270)
        #expect(tokenizer.vocabularySize == 270)
        // "le" occurs five times (four circles, one left); next " c", "ci", "ir", "rc", "cl", "re"
        // tie at four and the pair of smaller ids wins: " " is byte 32, so " c" comes first.
        #expect(tokenizer.tokens[256] == "le" && tokenizer.tokens[257] == "Ġc")
        #expect(tokenizer.tokens.suffix(3) == BPETokenizer.specialTokens)
        #expect(tokenizer.encode("a")  == [97])
        #expect(tokenizer.encode(" circle").count == 1)
        #expect(tokenizer.encode("a red circle") == [97] + tokenizer.encode(" red") + tokenizer.encode(" circle"))
    }

    @Test func trainingIsDeterministic() {
        let a = BPETokenizer.train(captions: corpus, vocabularySize: 300)
        let b = BPETokenizer.train(captions: corpus.reversed(), vocabularySize: 300)
        #expect(a == b)
        // it stops once no pair occurs twice
        #expect(a.vocabularySize < 300)
    }

    @Test func roundTripsRandomUnicode() {
        let tokenizer = BPETokenizer.train(captions: corpus + ["😀 smiling face", "日本語のテキスト"], vocabularySize: 300)
        var state: UInt64 = 99
        func next() -> UInt64 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return state >> 33 }
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0x00...0x1F, 0xA0...0x24F, 0x3040...0x30FF, 0x4E00...0x9FFF, 0x1F300...0x1FAFF]
        for _ in 0..<300 {
            var text = ""
            for _ in 0..<Int(next() % 24) {
                let pool = pools[Int(next() % UInt64(pools.count))]
                if let scalar = Unicode.Scalar(pool.lowerBound + UInt32(next() % UInt64(pool.count))) {
                    text.unicodeScalars.append(scalar)
                }
            }
            #expect(tokenizer.decode(tokenizer.encode(text)) == text)
        }
    }

    @Test func specialTokensDecodeOnlyWhenAsked() {
        let tokenizer = BPETokenizer.train(captions: corpus, vocabularySize: 270)
        let ids = [tokenizer.startOfText] + tokenizer.encode("a red circle") + [tokenizer.endOfText, tokenizer.padding]
        #expect(tokenizer.decode(ids) == "a red circle")
        #expect(tokenizer.decode(ids, keepSpecialTokens: true) == "<|startoftext|>a red circle<|endoftext|><|pad|>")
        // text that spells a special token is just text
        #expect(!tokenizer.encode("<|pad|>").contains(tokenizer.padding))
    }

    @Test func normalisation() {
        #expect(normalizeCaption("  A Small\tRED  circle\n") == "a small red circle")
        #expect(normalizeCaption("Cafe\u{301}") == "café")
    }
}

@Suite struct VocabularyFiles {
    func scratchDirectory(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bpe-\(name)-\(getpid())").path
    }

    @Test func writeThenReadGivesTheSameTokenizer() throws {
        let directory = scratchDirectory("round-trip")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenizer = BPETokenizer.train(captions: ["a small red circle", "a large red circle", "a red square"], vocabularySize: 280)
        try tokenizer.write(to: directory)
        #expect(try BPETokenizer(directory: directory) == tokenizer)
        let merges = try String(contentsOfFile: directory + "/merges.txt", encoding: .utf8)
        #expect(merges.hasPrefix("#version: 0.2\n"))
    }

    @Test func corruptFilesAreNamedErrors() throws {
        let directory = scratchDirectory("corrupt")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenizer = BPETokenizer.train(captions: ["a red circle", "a red circle"], vocabularySize: 270)
        try tokenizer.write(to: directory)
        let merges = directory + "/merges.txt", vocab = directory + "/vocab.json"
        let goodMerges = try Data(contentsOf: URL(fileURLWithPath: merges))
        try Data("#version: 0.2\nzz qq\n".utf8).write(to: URL(fileURLWithPath: merges))
        let mergeError = #expect(throws: (any Error).self) { try BPETokenizer(directory: directory) }
        #expect("\(mergeError!)".hasPrefix(merges + ": line 2"))
        try goodMerges.write(to: URL(fileURLWithPath: merges))
        try Data("{\"a\": 1}".utf8).write(to: URL(fileURLWithPath: vocab))
        let vocabError = #expect(throws: (any Error).self) { try BPETokenizer(directory: directory) }
        #expect("\(vocabError!)".hasPrefix(vocab + ": "))
        try Data("{\"a\": ".utf8).write(to: URL(fileURLWithPath: vocab))
        #expect(throws: (any Error).self) { try BPETokenizer(directory: directory) }
        try FileManager.default.removeItem(atPath: vocab)
        let missing = #expect(throws: (any Error).self) { try BPETokenizer(directory: directory) }
        #expect("\(missing!)".contains("missing"))
    }
}
