// The scorer: its contrastive loss against a computation by hand, data-parallel training against
// one worker, a tiny scorer learning to pair four captions with four pictures, exact resume,
// and its file.
import Foundation
import Testing
import TesseraModels
import TesseraTensor

func tinyScorerConfig() -> ScorerConfig {
    ScorerConfig(textLength: 4, textVocabularySize: 12, imageSize: 8, textWidth: 16, textLayers: 1, textHeads: 2,
                 imageChannels: [8, 16], embedding: 8)
}

/// Four pictures, each a different colour in a different quadrant, captioned [k + 1, k + 5].
func tinyScorerExamples() -> [ScorerExample] {
    (0..<4).map { k in
        var pixels = [UInt8](repeating: 255, count: 3 * 64)
        for y in 0..<4 {
            for x in 0..<4 {
                let p = (y + 4 * (k / 2)) * 8 + x + 4 * (k % 2)
                pixels[(k % 3) * 64 + p] = 0
            }
        }
        return ScorerExample(captions: [[Int32(k + 1), Int32(k + 5)]], pixels: pixels)
    }
}

@Suite struct ScorerBehaviour {
    @Test func contrastiveLossMatchesAHandComputation() {
        let scorer = Scorer(config: tinyScorerConfig(), seed: 1)
        var rng = RandomGenerator(seed: 2)
        let (b, e) = (3, 8)
        func unitRows() -> [Float] {
            var rows = [Float](repeating: 0, count: b * e)
            rows.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, count: b * e) }
            for i in 0..<b {
                let norm = (0..<e).map { rows[i * e + $0] * rows[i * e + $0] }.reduce(0, +).squareRoot()
                for k in 0..<e { rows[i * e + k] /= norm }
            }
            return rows
        }
        let text = unitRows(), image = unitRows()
        let tape = Tape()
        let loss = scorer.contrastiveLoss(tape, text: Tensor(shape: [b, e], values: text), image: Tensor(shape: [b, e], values: image)).item
        tape.reset()
        let scale = Double(scorer.logitScale)
        #expect(abs(scale - 1 / 0.07) < 1e-3)
        func logit(_ i: Int, _ j: Int) -> Double {  // caption i with picture j
            scale * (0..<e).map { Double(text[i * e + $0]) * Double(image[j * e + $0]) }.reduce(0, +)
        }
        var expected = 0.0
        for i in 0..<b {
            let captionRow = (0..<b).map { logit(i, $0) }, pictureRow = (0..<b).map { logit($0, i) }
            expected += (log(captionRow.map(exp).reduce(0, +)) - captionRow[i]) / Double(2 * b)
            expected += (log(pictureRow.map(exp).reduce(0, +)) - pictureRow[i]) / Double(2 * b)
        }
        #expect(abs(Double(loss) - expected) < 1e-4 * max(1, expected), "loss \(loss), by hand \(expected)")
    }

    /// The coupled data-parallel backward (each worker's share through its towers, one loss over
    /// the whole batch) gives the gradient of one worker doing it all.
    @Test func twoWorkersComputeTheGradientOfOne() {
        let scorer = Scorer(config: tinyScorerConfig(), seed: 3)
        let replica = Scorer(replicaOf: scorer)
        let examples = tinyScorerExamples()
        let text = examples.flatMap { scorer.textTokens($0.captions[0]) }, pictures = examples.flatMap(\.planar)
        func gradients(_ workers: [Scorer]) -> (loss: Float, grads: [[Float]]) {
            let loss = DataParallel.backward(workers.map(\.parameters), batch: 4, outputs: { w, share, tape in
                let t = Array(text[share.lowerBound * 4..<share.upperBound * 4])
                let p = Array(pictures[share.lowerBound * 192..<share.upperBound * 192])
                return tape.concatenate([workers[w].encodeText(tape, t),
                                         workers[w].encodeImage(tape, Tensor(shape: [share.count, 3, 8, 8], values: p))], axis: 0)
            }, loss: { tape, outputs in
                let halves = outputs.map { tape.reshape($0, [2, $0.shape[0] / 2, 8]) }
                func part(_ i: Int) -> Tensor {
                    tape.reshape(tape.concatenate(halves.map { tape.slice($0, axis: 0, i..<i + 1) }, axis: 1), [4, 8])
                }
                return scorer.contrastiveLoss(tape, text: part(0), image: part(1))
            })
            return (loss, scorer.parameters.entries.map(\.tensor.gradValues))
        }
        let one = gradients([scorer]), two = gradients([scorer, replica])
        #expect(abs(one.loss - two.loss) < 1e-6)
        var worst: Float = 0, largest: Float = 0
        for (a, b) in zip(one.grads, two.grads) {
            for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)); largest = max(largest, abs(x)) }
        }
        #expect(largest > 1e-3 && worst < 1e-5 * largest, "largest gradient \(largest), largest difference \(worst)")
    }

    @Test func aTinyScorerLearnsToPairCaptionsWithPictures() {
        var options = PriorTrainingOptions()
        options.batchSize = 4
        options.steps = 150
        options.learningRate = 3e-3
        options.warmupSteps = 10
        let scorer = Scorer(config: tinyScorerConfig(), seed: 4)
        let trainer = ScorerTrainer(scorer: scorer, options: options)
        let examples = tinyScorerExamples()
        let before = trainer.validation(examples)
        for _ in 0..<options.steps { _ = trainer.train(examples) }
        let after = trainer.validation(examples)
        #expect(after.accuracy == 1, "accuracy \(after.accuracy)")
        #expect(after.loss < before.loss / 4, "loss \(before.loss) → \(after.loss)")
    }

    @Test func resumeContinuesExactly() throws {
        let folder = try temporaryFolder("scorer-resume")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var options = PriorTrainingOptions()
        options.batchSize = 3
        options.steps = 6
        let examples = tinyScorerExamples()
        let straight = Scorer(config: tinyScorerConfig(), seed: 5)
        let straightTrainer = ScorerTrainer(scorer: straight, options: options)
        for _ in 0..<6 { _ = straightTrainer.train(examples) }

        let first = Scorer(config: tinyScorerConfig(), seed: 5)
        let firstTrainer = ScorerTrainer(scorer: first, options: options)
        for _ in 0..<3 { _ = firstTrainer.train(examples) }
        let path = folder + "/scorer-checkpoint.safetensors"
        try firstTrainer.saveCheckpoint(to: path, metadata: [:])
        let resumed = Scorer(config: tinyScorerConfig(), seed: 99)
        let resumedTrainer = ScorerTrainer(scorer: resumed, options: options)
        _ = try resumedTrainer.restoreCheckpoint(from: path)
        for _ in 0..<3 { _ = resumedTrainer.train(examples) }
        for (a, b) in zip(straight.parameters.entries, resumed.parameters.entries) {
            #expect(a.tensor.values == b.tensor.values, "\(a.name)")
        }
    }

    @Test func fileRoundTripAndDamage() throws {
        let folder = try temporaryFolder("scorer-file")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let scorer = Scorer(config: tinyScorerConfig(), seed: 6)
        let path = folder + "/scorer.safetensors"
        try scorer.save(to: path)
        let loaded = try Scorer.load(path: path)
        #expect(loaded.config == scorer.config)
        let pictures = tinyScorerExamples().map(\.planar)
        let a = scorer.imageFeatures(pictures), b = loaded.imageFeatures(pictures)
        #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-2)  // f16 weights
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 10).write(to: URL(fileURLWithPath: path))
        #expect(throws: TesseraError.self) { try Scorer.load(path: path) }
    }
}
