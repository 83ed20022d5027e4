// The AR prior: causality of image positions, the cached sampling path against the full
// forward, completion, determinism, and a tiny model learning a caption → grid mapping.
import Foundation
import Testing
import TesseraModels
import TesseraKernels
import TesseraTensor

func tinyPriorConfig() -> ARPriorConfig {
    ARPriorConfig(textLength: 3, textVocabularySize: 10, gridHeight: 2, gridWidth: 3, codebookSize: 7,
                  width: 16, layers: 2, numHeads: 2, captionDropout: 0)
}

@Suite struct ARPriorBehaviour {
    @Test func imagePositionsNeverSeeLaterTokens() {
        let prior = ARPrior(config: tinyPriorConfig(), seed: 1)
        let text = prior.textTokens([4, 2])
        #expect(text == [4, 2, 12])  // the third position holds its own pad: 10 + 2
        let image: [Int32] = [1, 2, 3, 4, 5, 6]
        var changed = image
        changed[2] = 0  // image token 2
        let a = prior.imageLogits(text: text, image: image), b = prior.imageLogits(text: text, image: changed)
        let k = 7
        // Logits for image tokens 0…2 are computed before token 2 is read; token 3's are not.
        #expect(Array(a[0..<3 * k]) == Array(b[0..<3 * k]))
        #expect(Array(a[3 * k..<4 * k]) != Array(b[3 * k..<4 * k]))
    }

    @Test func cachedDecodingMatchesTheFullForward() {
        let config = tinyPriorConfig()
        let prior = ARPrior(config: config, seed: 2)
        let text = prior.textTokens([1, 5, 9]) + prior.textTokens([3])
        let image: [Int32] = [1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1]
        let full = prior.imageLogits(text: text, image: image)  // (2, 6, K)
        let cache = prior.makeCache(batch: 2)
        var cached = [[Float]](repeating: [], count: 2)
        var logits = prior.decodeStep(text, batch: 2, start: 0, cache: cache)
        for j in 0..<6 {
            for b in 0..<2 { cached[b] += logits[b * 7..<(b + 1) * 7] }
            if j < 5 { logits = prior.decodeStep([image[j], image[6 + j]], batch: 2, start: 3 + j, cache: cache) }
        }
        let flat = cached[0] + cached[1]
        let worst = zip(full, flat).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-5, "largest difference \(worst)")
    }

    @Test func samplingIsDeterministicAndCompletionKeepsTokens() {
        let prior = ARPrior(config: tinyPriorConfig(), seed: 3)
        let text = prior.textTokens([7]) + prior.textTokens([8, 1])
        var first = RandomGenerator(seed: 11), second = RandomGenerator(seed: 11)
        let options = SamplingOptions(temperature: 1, topK: 4, topP: 0.9, guidance: 2)
        let a = prior.sample(text: text, options: options, rng: &first)
        let b = prior.sample(text: text, options: options, rng: &second)
        #expect(a == b && a.allSatisfy { (0..<7).contains($0) })
        let keep: [Int32] = [5, 5, 5, -1, -1, -1, 0, 1, -1, -1, -1, 2]
        var rng = RandomGenerator(seed: 12)
        var rowsSeen: [Int] = []
        let completed = prior.sample(text: text, options: options, rng: &rng, keep: keep) { row, _ in rowsSeen.append(row) }
        for (i, kept) in keep.enumerated() where kept >= 0 { #expect(completed[i] == kept) }
        #expect(rowsSeen == [0, 1])
    }

    @Test func guidanceOfOneIsPlainConditionalSampling() {
        let config = tinyPriorConfig()
        let prior = ARPrior(config: config, seed: 6)
        let text = prior.textTokens([2, 9])
        var rng = RandomGenerator(seed: 13)
        let plain = prior.sample(text: text, options: SamplingOptions(topK: 5, guidance: 1), rng: &rng)
        // Replay the drawn grid through the guided batch (conditional row, then the empty
        // caption's row): guidance 1 over that batch must give the plain conditional logits.
        let single = prior.makeCache(batch: 1), pair = prior.makeCache(batch: 2)
        var alone = prior.decodeStep(text, batch: 1, start: 0, cache: single)
        var both = prior.decodeStep(text + prior.emptyText, batch: 2, start: 0, cache: pair)
        var worst: Float = 0, moved: Float = 0
        for j in 0..<config.imageLength {
            var guided = Array(both[0..<config.codebookSize])
            applyGuidance(&guided, unconditional: both[config.codebookSize...], scale: 1)
            worst = max(worst, zip(guided, alone).map { abs($0 - $1) }.max()!)
            var stronger = Array(both[0..<config.codebookSize])
            applyGuidance(&stronger, unconditional: both[config.codebookSize...], scale: 3)
            moved = max(moved, zip(stronger, alone).map { abs($0 - $1) }.max()!)
            if j + 1 < config.imageLength {
                alone = prior.decodeStep([plain[j]], batch: 1, start: config.textLength + j, cache: single)
                both = prior.decodeStep([plain[j], plain[j]], batch: 2, start: config.textLength + j, cache: pair)
            }
        }
        #expect(worst < 1e-5, "guidance 1 differs from conditional logits by \(worst)")
        #expect(moved > 1e-3, "a caption that changes nothing would make this test vacuous")
    }

    @Test func topKAndTemperatureZeroRestrictTheChoice() {
        var rng = RandomGenerator(seed: 4)
        for _ in 0..<50 {
            var logits: [Float] = [0.1, 3, 2.9, -1, 0]
            let code = pickCode(&logits, options: SamplingOptions(topK: 2), rng: &rng)
            #expect(code == 1 || code == 2)
        }
        var logits: [Float] = [0.1, 3, 2.9, -1, 0]
        #expect(pickCode(&logits, options: SamplingOptions(temperature: 0), rng: &rng) == 1)
        var peaked: [Float] = [10, 0, 0, 0]
        #expect(pickCode(&peaked, options: SamplingOptions(topP: 0.5), rng: &rng) == 0)
    }

    @Test func tinyModelLearnsCaptionToGrid() {
        var config = tinyPriorConfig()
        config.width = 32
        let prior = ARPrior(config: config, seed: 5)
        let captions: [[Int32]] = [[1], [2], [3, 4], [5]]
        let grids: [[Int32]] = [[0, 1, 2, 3, 4, 5], [6, 6, 6, 0, 0, 0], [1, 3, 5, 1, 3, 5], [2, 2, 4, 4, 6, 6]]
        let optimizer = AdamW(parameters: prior.parameters, hyper: AdamWHyperparameters(learningRate: 3e-3, weightDecay: 0))
        let text = captions.flatMap { prior.textTokens($0) }, image = grids.flatMap { $0 }
        let tape = Tape()
        for _ in 0..<300 {
            prior.parameters.zeroGrads()
            tape.backward(prior.loss(tape, text: text, image: image).total)
            optimizer.update(learningRate: 3e-3)
        }
        var rng = RandomGenerator(seed: 6)
        let sampled = prior.sample(text: text, options: SamplingOptions(temperature: 0), rng: &rng)
        #expect(sampled == image)
        #expect(prior.loss(tape, text: text, image: image).image < 0.05)
        tape.reset()
    }

    @Test func dataParallelStepsMatchOneWorker() {
        let config = tinyPriorConfig()
        let examples: [TokenizedExample] = (0..<8).map { (i: Int) -> TokenizedExample in
            let grid: [Int32] = (0..<6).map { (j: Int) -> Int32 in Int32((j + i) % 7) }
            return TokenizedExample(captions: [[Int32(i % 10)], [Int32((i + 3) % 10), 1]], grid: grid)
        }
        var options = PriorTrainingOptions()
        options.batchSize = 7  // shares of 3 and 4
        options.steps = 10
        options.warmupSteps = 1
        let single = ARTrainer(prior: ARPrior(config: config, seed: 8), options: options, workers: 1)
        let split = ARTrainer(prior: ARPrior(config: config, seed: 8), options: options, workers: 2)
        for _ in 0..<3 {
            let a = single.train(examples), b = split.train(examples)
            #expect(abs(a.image - b.image) < 1e-5 && abs(a.text - b.text) < 1e-5)
        }
        for (x, y) in zip(single.prior.parameters.entries, split.prior.parameters.entries) {
            let worst = zip(x.tensor.values, y.tensor.values).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "\(x.name) differs by \(worst)")
        }
        #expect(abs(single.validationLoss(examples) - split.validationLoss(examples)) < 1e-5)
    }

    @Test func theFirstCaptionIsDrawnAtItsRate() throws {
        var options = PriorTrainingOptions()
        options.batchSize = 1000
        options.firstCaptionRate = 0.5
        let trainer = ARTrainer(prior: ARPrior(config: tinyPriorConfig(), seed: 9), options: options, workers: 1)
        let example = TokenizedExample(captions: [[1], [2], [3], [4]], grid: [0, 1, 2, 3, 4, 5])
        let text = trainer.drawBatch([example]).text
        let firsts = stride(from: 0, to: text.count, by: 3).filter { text[$0] == 1 }.count
        #expect((575...675).contains(firsts), "first caption drawn \(firsts) times in 1,000; expected about 625")
        // Options saved before the rate existed load with its default.
        let old = #"{"steps":9,"batchSize":4,"learningRate":0.001,"warmupSteps":2,"seed":3}"#
        let loaded = try JSONDecoder().decode(PriorTrainingOptions.self, from: Data(old.utf8))
        #expect(loaded.steps == 9 && loaded.seed == 3 && loaded.firstCaptionRate == 0.5)
    }
}
