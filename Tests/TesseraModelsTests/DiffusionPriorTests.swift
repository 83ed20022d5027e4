// The diffusion prior: the schedule's maths, DDIM's determinism, snapping, adaLN-Zero's
// identity start, a tiny denoiser that learns one latent per caption, data-parallel steps,
// exact resume and model files.
import Foundation
import Testing
import TesseraModels
import TesseraTensor

func tinyDiffusionConfig(gridWidth: Int = 3, patchSize: Int = 1, selfCondition: Bool = false,
                         textLayers: Int = 0, pooledCaption: Bool = true,
                         captionContext: Bool = false, crossAttention: Bool = false,
                         flatCaption: Bool = false, cellEmbedding: Bool = false,
                         tokenLossWeight: Float = 0) -> DiffusionPriorConfig {
    DiffusionPriorConfig(textLength: 3, textVocabularySize: 10, gridHeight: 2, gridWidth: gridWidth, codebookSize: 8,
                         latentChannels: 4, width: 16, layers: 2, numHeads: 2, captionDropout: 0.1, diffusionSteps: 100,
                         patchSize: patchSize, selfCondition: selfCondition, textLayers: textLayers,
                         pooledCaption: pooledCaption, captionContext: captionContext, crossAttention: crossAttention,
                         flatCaption: flatCaption, cellEmbedding: cellEmbedding, tokenLossWeight: tokenLossWeight)
}

/// Eight unit-length code vectors of dimension 4 (±1 on two axes, normalised).
let tinyCodeVectors: [Float] = (0..<8).flatMap { k -> [Float] in
    var v: [Float] = [0, 0, 0, 0]
    v[k % 4] = k < 4 ? 1 : -1
    v[(k + 1) % 4] = 0.5
    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / norm }
}

@Suite struct DiffusionScheduleMaths {
    @Test func cosineScheduleFallsFromOneToNearZero() {
        let schedule = CosineSchedule(steps: 1000)
        #expect(schedule.alphaBars[0] == 1 && schedule.alphaBars.count == 1001)
        #expect(zip(schedule.alphaBars, schedule.alphaBars.dropFirst()).allSatisfy { $0 > $1 })
        #expect(schedule.alphaBars[1000] < 1e-6 && schedule.alphaBars[1000] > 0)
        // The cosine curve: ᾱ at T/2 is close to cos²(π/4 · (0.5 + s)/(1 + s)·2)/f(0) ≈ 0.49.
        #expect(abs(schedule.alphaBars[500] - 0.49) < 0.02, "\(schedule.alphaBars[500])")
    }

    @Test func noisingThenVelocityRecoversCleanAndNoise() {
        let schedule = CosineSchedule(steps: 1000)
        var rng = RandomGenerator(seed: 71)
        let clean = (0..<40).map { _ in rng.normal() }, noise = (0..<40).map { _ in rng.normal() }
        for t in [1, 10, 500, 999, 1000] {
            let noisy = schedule.noised(clean, noise: noise, at: t)
            let v = schedule.velocity(clean: clean, noise: noise, at: t)
            let x0 = schedule.clean(noisy: noisy, velocity: v, at: t), epsilon = schedule.noise(noisy: noisy, velocity: v, at: t)
            #expect(zip(x0, clean).allSatisfy { abs($0 - $1) < 1e-5 }, "x̂₀ at t = \(t)")
            #expect(zip(epsilon, noise).allSatisfy { abs($0 - $1) < 1e-5 }, "ε̂ at t = \(t)")
        }
    }

    @Test func ddimWithEtaZeroIsDeterministicAndExactOnTheTrueVelocity() {
        let schedule = CosineSchedule(steps: 100)
        var rng = RandomGenerator(seed: 72)
        let clean = (0..<12).map { _ in rng.normal() }, noise = (0..<12).map { _ in rng.normal() }
        let noisy = schedule.noised(clean, noise: noise, at: 80)
        let v = schedule.velocity(clean: clean, noise: noise, at: 80)
        var first = RandomGenerator(seed: 1), second = RandomGenerator(seed: 2)
        let a = schedule.step(noisy: noisy, velocity: v, from: 80, to: 40, eta: 0, rng: &first)
        let b = schedule.step(noisy: noisy, velocity: v, from: 80, to: 40, eta: 0, rng: &second)
        #expect(a == b)  // η = 0 draws nothing
        // Given the true v, DDIM lands on the same trajectory: x_40 = √ᾱ₄₀·x₀ + √(1−ᾱ₄₀)·ε.
        let expected = schedule.noised(clean, noise: noise, at: 40)
        #expect(zip(a, expected).allSatisfy { abs($0 - $1) < 1e-5 })
        let toClean = schedule.step(noisy: noisy, velocity: v, from: 80, to: 0, eta: 0, rng: &first)
        #expect(zip(toClean, clean).allSatisfy { abs($0 - $1) < 1e-5 })
        // η = 1 adds noise, drawn from the generator.
        let ancestral = schedule.step(noisy: noisy, velocity: v, from: 80, to: 40, eta: 1, rng: &first)
        #expect(ancestral != a)
    }

    @Test func shiftedTrainingTimestepsLeanTowardsNoise() {
        let uniform = PriorTrainingOptions()
        var shifted = PriorTrainingOptions()
        shifted.timestepShift = 3
        var a = RandomGenerator(seed: 12), b = RandomGenerator(seed: 12), c = RandomGenerator(seed: 12)
        let plain = (0..<4000).map { _ in uniform.drawTimestep(steps: 1000, rng: &a) }
        let leaning = (0..<4000).map { _ in shifted.drawTimestep(steps: 1000, rng: &b) }
        // A shift of 1 is the old uniform draw, value for value.
        #expect(plain == (0..<4000).map { _ in 1 + c.int(below: 1000) })
        #expect(leaning.allSatisfy { (1...1000).contains($0) })
        // u ↦ 3u/(1 + 2u): the median moves from T/2 to 3T/4.
        let median = leaning.sorted()[2000]
        #expect(abs(median - 750) < 30, "median \(median)")
        #expect(abs(plain.sorted()[2000] - 500) < 30)
    }

    @Test func samplingTimestepsRunFromTDown() {
        let schedule = CosineSchedule(steps: 1000)
        #expect(schedule.samplingTimesteps(4) == [1000, 750, 500, 250])
        #expect(schedule.samplingTimesteps(1) == [1000])
        #expect(schedule.samplingTimesteps(5000).count == 1000 && schedule.samplingTimesteps(5000).last == 1)
    }

    @Test func snappingPicksTheNearestCode() {
        var rng = RandomGenerator(seed: 73)
        let latents = (0..<(20 * 4)).map { _ in rng.normal() }
        let snapped = snapToCodes(latents, codeVectors: tinyCodeVectors, dimension: 4)
        for p in 0..<20 {
            let distances = (0..<8).map { k in (0..<4).reduce(Float(0)) { sum, c in
                let e = latents[p * 4 + c] - tinyCodeVectors[k * 4 + c]
                return sum + e * e
            } }
            #expect(snapped[p] == Int32(distances.indices.min { distances[$0] < distances[$1] }!))
        }
        // A code's own vector snaps to that code.
        #expect(snapToCodes(tinyCodeVectors, codeVectors: tinyCodeVectors, dimension: 4) == (0..<8).map { Int32($0) })
    }
}

@Suite struct DiffusionPriorBehaviour {
    @Test func patchesGatherTheirPositionsAndComeBack() throws {
        let prior = DiffusionPrior(config: tinyDiffusionConfig(gridWidth: 4, patchSize: 2), seed: 1)
        // Two items of a 2×4 grid, 4 channels: value = item·100 + position·10 + channel.
        let latents: [Float] = (0..<64).map { (i: Int) -> Float in Float(i / 32 * 100 + i % 32 / 4 * 10 + i % 4) }
        let sequence = prior.patchify(latents)
        // The first patch holds grid positions 0, 1, 4, 5; the second 2, 3, 6, 7.
        let firstPositions = stride(from: 0, to: 16, by: 4).map { Int(sequence[$0]) / 10 }
        let secondPositions = stride(from: 16, to: 32, by: 4).map { Int(sequence[$0]) / 10 }
        #expect(firstPositions == [0, 1, 4, 5] && secondPositions == [2, 3, 6, 7])
        #expect(Array(sequence[32..<36]) == [100, 101, 102, 103])
        #expect(prior.unpatchify(sequence) == latents)
        // Configs written before patches read as p = 1; a patch that does not divide the grid is refused.
        var old = try JSONSerialization.jsonObject(with: JSONEncoder().encode(tinyDiffusionConfig())) as! [String: Any]
        old["patchSize"] = nil
        let decoded = try JSONDecoder().decode(DiffusionPriorConfig.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(decoded == tinyDiffusionConfig() && decoded.patchSize == 1)
        #expect(throws: TesseraError.self) { try tinyDiffusionConfig(gridWidth: 3, patchSize: 2).validate() }
    }

    @Test func gridPositionsStartAsTwoDimensionalSinCos() throws {
        let config = tinyDiffusionConfig(gridWidth: 3)  // Ttext 3, a 2×3 grid, width 16
        let prior = DiffusionPrior(config: config, seed: 2)
        let table = try #require(prior.parameters.entries.first { $0.name == "diffusion.position_embedding" }).tensor
        func entry(_ i: Int) -> [Float] { Array(table.values[i * 16..<(i + 1) * 16]) }
        func sinCos(_ position: Int) -> [Float] {
            let angles = (0..<4).map { Double(position) * pow(10_000, -Double($0) / 4) }
            return angles.map { Float(sin($0)) } + angles.map { Float(cos($0)) }
        }
        let zeros = [Float](repeating: 0, count: 8)
        #expect(entry(3) == sinCos(0) + zeros && entry(4) == sinCos(1) + zeros)  // rows: the first half
        #expect(entry(5) == zeros + sinCos(0) && entry(7) == zeros + sinCos(2))  // columns: the second half
        #expect((0..<3).allSatisfy { entry($0).allSatisfy { abs($0) < 0.2 } })  // text positions keep GPT-2's small start
        // Positions are told apart at high noise: no two grid places share a row-plus-column embedding.
        let places = (0..<2).flatMap { r in (0..<3).map { k in zip(entry(3 + r), entry(5 + k)).map(+) } }
        #expect(Set(places.map { $0.map { ($0 * 1e4).rounded() } }).count == 6)
    }

    @Test func anUntrainedPriorPredictsZero() {
        let prior = DiffusionPrior(config: tinyDiffusionConfig(), seed: 3)
        var rng = RandomGenerator(seed: 74)
        let tape = Tape()
        let noisy = Tensor(shape: [2, 6, 4], values: (0..<48).map { _ in rng.normal() })
        let v = prior.velocity(tape, noisy: noisy, timesteps: [10, 90], text: prior.textTokens([1]) + prior.emptyText)
        #expect(v.shape == [2, 6, 4] && v.values.allSatisfy { $0 == 0 })  // adaLN-Zero and a zero output layer
        tape.reset()
    }

    /// With p = 1 a position per code; with p = 2 the 2×4 grid is two positions of 2×2 codes;
    /// and a self-conditioned prior.
    /// The fourth case leaves the pooled caption out: the caption reaches the latents through
    /// attention alone; the fifth keeps the caption's tokens as context that the blocks do not
    /// update; the last reaches the caption by cross-attention alone.
    @Test(arguments: [(3, 1, false, true, false, false), (4, 2, false, true, false, false), (4, 2, true, true, false, false),
                      (3, 1, false, false, false, false), (3, 1, false, true, true, false), (4, 2, false, false, false, true)])
    func tinyDenoiserLearnsALatentPerCaption(gridWidth: Int, patchSize: Int, selfCondition: Bool, pooledCaption: Bool,
                                             captionContext: Bool, crossAttention: Bool) {
        var options = PriorTrainingOptions()
        options.steps = selfCondition ? 800 : 400  // twice the inputs, the estimate in half the items
        options.batchSize = 8
        options.learningRate = 3e-3
        options.warmupSteps = 20
        var config = tinyDiffusionConfig(gridWidth: gridWidth, patchSize: patchSize, selfCondition: selfCondition,
                                         pooledCaption: pooledCaption, captionContext: captionContext,
                                         crossAttention: crossAttention)
        config.captionDropout = 0
        let prior = DiffusionPrior(config: config, seed: 5)
        let grids: [[Int32]] = [Array([0, 1, 2, 3, 4, 5, 6, 7].prefix(2 * gridWidth)), Array([7, 7, 6, 6, 5, 5, 4, 4].prefix(2 * gridWidth))]
        let examples = [TokenizedExample(captions: [[1]], grid: grids[0]), TokenizedExample(captions: [[2, 3]], grid: grids[1])]
        let trainer = DiffusionTrainer(prior: prior, codeVectors: tinyCodeVectors, options: options, workers: 1)
        trainer.measureStatistics(examples)
        let first = trainer.validationLoss(examples)
        for _ in 0..<options.steps { _ = trainer.train(examples) }
        let last = trainer.validationLoss(examples)
        #expect(last < first / 4, "validation v error \(first) → \(last)")
        // Two captions, two grids: without its caption the prior cannot tell which to draw.
        let uncaptioned = trainer.validationLoss(examples, captions: false)
        #expect(last < uncaptioned, "validation v error \(last), \(uncaptioned) with the captions dropped")
        // Four seeds: nearly every token right (a tiny prior misses the odd one), some draw exact.
        let text = prior.textTokens([1]) + prior.textTokens([2, 3])
        let draws = (6...9).map { seed in
            var rng = RandomGenerator(seed: UInt64(seed))
            let latents = prior.sample(text: text, options: DiffusionSamplingOptions(steps: 25), rng: &rng)
            return (latents, snapToCodes(prior.denormalize(latents), codeVectors: tinyCodeVectors, dimension: 4))
        }
        let right = draws.map { zip($0.1, grids.flatMap { $0 }).filter { $0 == $1 }.count }.reduce(0, +)
        #expect(right * 10 >= draws.count * grids.flatMap { $0 }.count * 9, "sampled \(draws.map(\.1))")
        #expect(draws.contains { $0.1 == grids.flatMap { $0 } }, "sampled \(draws.map(\.1))")
        let latents = draws[0].0
        // The same seed gives the same latents; completion keeps the known positions' codes.
        var again = RandomGenerator(seed: 6)
        #expect(prior.sample(text: text, options: DiffusionSamplingOptions(steps: 25), rng: &again) == latents)
        let known = grids[1].enumerated().map { $0.offset < 3 }
        let keep = (latent: prior.normalize(trainer.latent(of: grids[1])), known: known)
        var third = RandomGenerator(seed: 7)
        let completed = prior.sample(text: prior.textTokens([2, 3]), options: DiffusionSamplingOptions(steps: 10), rng: &third, keep: keep)
        let completedTokens = snapToCodes(prior.denormalize(completed), codeVectors: tinyCodeVectors, dimension: 4)
        #expect(Array(completedTokens.prefix(3)) == Array(grids[1].prefix(3)))
    }

    @Test func guidedSamplingRunsBothRowsAndOneMatchesPlain() {
        let prior = DiffusionPrior(config: tinyDiffusionConfig(), seed: 9)
        // Make the prior non-trivial: random weights everywhere.
        var weights = RandomGenerator(seed: 10)
        for entry in prior.parameters.entries { weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1) }
        let text = prior.textTokens([4, 5])
        var a = RandomGenerator(seed: 11), b = RandomGenerator(seed: 11), c = RandomGenerator(seed: 11)
        let plain = prior.sample(text: text, options: DiffusionSamplingOptions(steps: 5), rng: &a)
        let scaleOne = prior.sample(text: text, options: DiffusionSamplingOptions(steps: 5, guidance: 1), rng: &b)
        let guided = prior.sample(text: text, options: DiffusionSamplingOptions(steps: 5, guidance: 3), rng: &c)
        #expect(plain == scaleOne)
        #expect(guided != plain)
    }

    @Test(arguments: zip([false, true, false, false], [(0, Float(0)), (0, 0), (1, 0), (0, 0.5)]))
    func dataParallelStepsMatchOneWorkerAndResumeIsExact(selfCondition: Bool, layersAndTokenLoss: (Int, Float)) throws {
        let (textLayers, tokenLoss) = layersAndTokenLoss
        func config() -> DiffusionPriorConfig {
            tinyDiffusionConfig(selfCondition: selfCondition, textLayers: textLayers, tokenLossWeight: tokenLoss)
        }
        let examples: [TokenizedExample] = (0..<6).map { (i: Int) -> TokenizedExample in
            let grid: [Int32] = (0..<6).map { (j: Int) -> Int32 in Int32((j + i) % 8) }
            return TokenizedExample(captions: [[Int32(i)], [Int32(i + 1), 2]], grid: grid)
        }
        var options = PriorTrainingOptions()
        options.batchSize = 5  // shares of 2 and 3
        options.steps = 10
        options.warmupSteps = 1
        options.weightAverageDecay = 0.5
        let single = DiffusionTrainer(prior: DiffusionPrior(config: config(), seed: 8), codeVectors: tinyCodeVectors,
                                      options: options, workers: 1)
        let split = DiffusionTrainer(prior: DiffusionPrior(config: config(), seed: 8), codeVectors: tinyCodeVectors,
                                     options: options, workers: 2)
        single.measureStatistics(examples)
        split.measureStatistics(examples)
        for _ in 0..<3 {
            let (a, b) = (single.train(examples), split.train(examples))
            #expect(abs(a.velocity - b.velocity) < 1e-5 && abs(a.tokens - b.tokens) < 1e-5)
            #expect((a.tokens > 0) == (tokenLoss > 0))
        }
        #expect(abs(single.validationLoss(examples) - split.validationLoss(examples)) < 1e-5)
        for (x, y) in zip(single.prior.parameters.entries, split.prior.parameters.entries) {
            let worst = zip(x.tensor.values, y.tensor.values).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "\(x.name) differs by \(worst)")
        }

        let folder = try temporaryFolder("dit")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try single.saveCheckpoint(to: folder + "/checkpoint.safetensors", metadata: [:])
        let straight = (0..<2).map { _ in single.train(examples) }.map { [$0.velocity, $0.tokens] }
        let resumed = DiffusionTrainer(prior: DiffusionPrior(config: config(), seed: 99), codeVectors: tinyCodeVectors,
                                       options: options, workers: 1)
        _ = try resumed.restoreCheckpoint(from: folder + "/checkpoint.safetensors")
        #expect((0..<2).map { _ in resumed.train(examples) }.map { [$0.velocity, $0.tokens] } == straight)
        #expect(resumed.averages.map(\.values) == single.averages.map(\.values))
        #expect(resumed.prior.latentStd.values == single.prior.latentStd.values)

        // The model file: f16 weights, f32 statistics; a damaged one is refused by name.
        try single.prior.save(to: folder + "/diffusion.safetensors")
        let loaded = try DiffusionPrior.load(path: folder + "/diffusion.safetensors")
        #expect(loaded.config == single.prior.config && loaded.latentMean.values == single.prior.latentMean.values)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: folder + "/diffusion.safetensors"))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: folder + "/cut.safetensors"))
        #expect(throws: TesseraError.self) { try DiffusionPrior.load(path: folder + "/cut.safetensors") }
    }

    /// The average after one update is d·w₀ + (1 − d)·w₁ with d = min(decay, 2/11); validation
    /// and `withAveragedWeights` see it, and the trained weights come back afterwards.
    @Test func weightAverageFollowsTheUpdates() {
        var options = PriorTrainingOptions()
        options.batchSize = 2
        options.weightAverageDecay = 0.9
        let examples = [TokenizedExample(captions: [[1]], grid: [0, 1, 2, 3, 4, 5]), TokenizedExample(captions: [[2]], grid: [5, 4, 3, 2, 1, 0])]
        let trainer = DiffusionTrainer(prior: DiffusionPrior(config: tinyDiffusionConfig(), seed: 3), codeVectors: tinyCodeVectors,
                                       options: options, workers: 1)
        trainer.measureStatistics(examples)
        let before = trainer.prior.parameters.entries.map(\.tensor.values)
        _ = trainer.train(examples)
        let after = trainer.prior.parameters.entries.map(\.tensor.values)
        let d: Float = 2.0 / 11
        var worst: Float = 0
        for (i, average) in trainer.averages.enumerated() {
            for j in 0..<average.count { worst = max(worst, abs(average.values[j] - (d * before[i][j] + (1 - d) * after[i][j]))) }
        }
        #expect(worst < 1e-6)
        #expect(before != after)
        let averaged = trainer.withAveragedWeights { trainer.prior.parameters.entries.map(\.tensor.values) }
        #expect(averaged == trainer.averages.map(\.values))
        #expect(trainer.prior.parameters.entries.map(\.tensor.values) == after)
        let averagedError = trainer.validationLoss(examples)
        var plainOptions = options
        plainOptions.weightAverageDecay = 0
        let plain = DiffusionTrainer(prior: trainer.prior, codeVectors: tinyCodeVectors, options: plainOptions, workers: 1)
        #expect(averagedError != plain.validationLoss(examples))
        #expect(trainer.withAveragedWeights { plain.validationLoss(examples) } == averagedError)
    }

    /// `objectWeight` weighs an example's foreground positions (all alike when it has none);
    /// the loss is then Σ w·e² / Σ w — for an untrained prior, which predicts v = 0, the
    /// weighted mean of the target's squares.
    @Test func objectWeightingWeighsTheForegroundPositions() {
        var options = PriorTrainingOptions()
        options.objectWeight = 3
        let prior = DiffusionPrior(config: tinyDiffusionConfig(), seed: 3)
        let trainer = DiffusionTrainer(prior: prior, codeVectors: tinyCodeVectors, options: options, workers: 1)
        func perPosition(_ w: [Float]) -> [Float] { w.flatMap { [Float](repeating: $0, count: 4) } }
        let grid: [Int32] = [5, 5, 7, 5, 5, 2]
        let example = TokenizedExample(captions: [[1]], grid: grid, foreground: [false, false, true, false, false, true])
        #expect(trainer.positionWeights(of: example) == perPosition([1, 1, 3, 1, 1, 3]))
        #expect(trainer.positionWeights(of: TokenizedExample(captions: [[1]], grid: grid)) == perPosition([1, 1, 1, 1, 1, 1]))

        var rng = RandomGenerator(seed: 21)
        let clean = (0..<24).map { _ in rng.normal() }, noise = (0..<24).map { _ in rng.normal() }
        let weights = trainer.positionWeights(of: example)
        func loss(_ weights: [Float]?) -> Float {
            let tape = Tape()
            defer { tape.reset() }
            return prior.loss(tape, clean: clean, noise: noise, timesteps: [40], text: prior.textTokens([1]), weights: weights).total.item
        }
        let target = prior.schedule.velocity(clean: clean, noise: noise, at: 40)
        let squares = target.map { $0 * $0 }
        let plain = squares.reduce(0, +) / 24
        let weighted = zip(squares, weights).map { $0 * $1 }.reduce(0, +) / weights.reduce(0, +)
        #expect(abs(loss(nil) - plain) < 1e-5 && abs(loss([Float](repeating: 2, count: 24)) - plain) < 1e-5)
        #expect(abs(loss(weights) - weighted) < 1e-5 && abs(weighted - plain) > 1e-3)
        // A trainer that weighs nothing differently draws the batches it always drew.
        let examples = [example]
        var plainOptions = PriorTrainingOptions()
        plainOptions.batchSize = 2
        options.batchSize = 2
        let (a, b) = (DiffusionTrainer(prior: DiffusionPrior(config: tinyDiffusionConfig(), seed: 3), codeVectors: tinyCodeVectors, options: plainOptions, workers: 1),
                      DiffusionTrainer(prior: DiffusionPrior(config: tinyDiffusionConfig(), seed: 3), codeVectors: tinyCodeVectors, options: options, workers: 1))
        a.measureStatistics(examples)
        b.measureStatistics(examples)
        #expect(a.train(examples).velocity != b.train(examples).velocity)
        #expect(a.rng == b.rng)
    }

    /// The token head starts at zero, every code equally likely: the cross-entropy is ln K per
    /// cell, weighted or not, and the total adds λ times it to the v error. Its targets are the
    /// grid's cells in the order `patchify` puts their vectors.
    @Test func tokenLossStartsAtLogKInPatchOrder() {
        let prior = DiffusionPrior(config: tinyDiffusionConfig(gridWidth: 4, patchSize: 2, tokenLossWeight: 0.5), seed: 3)
        let grid: [Int32] = [0, 1, 2, 3, 4, 5, 6, 7]
        var rng = RandomGenerator(seed: 21)
        let clean = (0..<32).map { _ in rng.normal() }, noise = (0..<32).map { _ in rng.normal() }
        let weights = (0..<8).flatMap { [Float](repeating: $0 % 3 == 0 ? 5 : 1, count: 4) }
        for w in [nil, weights] {
            let tape = Tape()
            defer { tape.reset() }
            let loss = prior.loss(tape, clean: clean, noise: noise, timesteps: [40], text: prior.textTokens([1]),
                                  weights: w, tokens: grid)
            #expect(abs(loss.tokens - log(8)) < 1e-5)
            #expect(abs(loss.total.item - (loss.velocity + 0.5 * log(8))) < 1e-5)
        }
        // One 2×4 grid in two 2×2 patches: the left patch's cells, then the right's.
        #expect(prior.patchifyCells(grid) == [0, 1, 4, 5, 2, 3, 6, 7])
        let latent = grid.flatMap { [Float](repeating: Float($0), count: 4) }
        #expect(prior.patchifyCells(grid) == stride(from: 0, to: 32, by: 4).map { Int32(prior.patchify(latent)[$0]) })
    }

    /// Two captions, two grids: the token head learns to name every cell of each.
    @Test func tokenHeadLearnsEachCaptionsGrid() {
        var options = PriorTrainingOptions()
        options.steps = 300
        options.batchSize = 8
        options.learningRate = 3e-3
        options.warmupSteps = 20
        var config = tinyDiffusionConfig(gridWidth: 4, patchSize: 2, tokenLossWeight: 1)
        config.captionDropout = 0
        let examples = [TokenizedExample(captions: [[1]], grid: [0, 1, 2, 3, 4, 5, 6, 7]),
                        TokenizedExample(captions: [[2, 3]], grid: [7, 7, 6, 6, 5, 5, 4, 4])]
        let trainer = DiffusionTrainer(prior: DiffusionPrior(config: config, seed: 5), codeVectors: tinyCodeVectors,
                                       options: options, workers: 1)
        trainer.measureStatistics(examples)
        let losses = (0..<options.steps).map { _ in trainer.train(examples).tokens }
        let last = losses.suffix(20).reduce(0, +) / 20
        #expect(abs(losses[0] - log(8)) < 1e-4 && last < 0.1, "token cross-entropy \(losses[0]) → \(last)")
        // Sampling from the head's probabilities draws each caption's grid, the same for a seed.
        let prior = trainer.prior
        let text = prior.textTokens([1]) + prior.textTokens([2, 3])
        let sampling = DiffusionSamplingOptions(steps: 10, guidance: 2, tokenHead: true)
        func draw(_ seed: UInt64) -> [Float] {
            var rng = RandomGenerator(seed: seed)
            return prior.sample(text: text, options: sampling, rng: &rng, codeVectors: tinyCodeVectors)
        }
        let latents = draw(6)
        #expect(snapToCodes(prior.denormalize(latents), codeVectors: tinyCodeVectors, dimension: 4) == examples.flatMap(\.grid))
        #expect(draw(6) == latents && draw(7) != latents)
    }

    /// An 8-pixel picture on a 4-wide grid (2-pixel patches): the border's most frequent colour
    /// is the background (black here, though a corner is white); one red pixel marks its patch
    /// and the patches around it; slight noise stays background.
    @Test func foregroundIsWhatDiffersFromTheBordersColour() {
        let size = 8, plane = 64
        var planar = [Float](repeating: -1, count: 3 * plane)  // black
        for c in 0..<3 { planar[c * plane] = 1 }  // a white corner pixel
        for p in 0..<plane { planar[p] += 0.05 }  // within the tolerance
        let red = 5 * size + 6  // row 5, column 6: patch (2, 3)
        planar[red] = 1
        let foreground = foregroundPositions(planar: planar, size: size, grid: 4)
        // The white corner differs from the background too: it marks patch (0, 0) and its neighbours.
        let expected = (0..<16).map { [0, 1, 4, 5, 6, 7, 10, 11, 14, 15].contains($0) }
        #expect(foreground == expected, "\(foreground)")
    }

    /// The background's key packs its 8-bit colour; the table holds, per colour and place, the
    /// code most often found there off the foreground, and `plain` puts it only there, leaving
    /// examples without a known foreground or with an unknown colour as they were.
    @Test func backgroundCodesReplaceOnlyThePlainBackground() throws {
        let (white, black) = (backgroundKey([1, 1, 1]), backgroundKey([-1, -1, -1]))
        #expect(white == 0xFF_FFFF && black == 0 && backgroundKey([1, -1, 0]) == 0xFF_0080)
        let on: [Bool] = [true, false, false, false]
        let examples = [
            TokenizedExample(captions: [[1]], grid: [9, 3, 4, 5], foreground: on, background: white),
            TokenizedExample(captions: [[1]], grid: [8, 3, 6, 5], foreground: on, background: white),
            TokenizedExample(captions: [[1]], grid: [7, 2, 6, 1], foreground: [true, true, false, false], background: white),
            TokenizedExample(captions: [[1]], grid: [7, 0, 0, 0], foreground: on, background: black),
            TokenizedExample(captions: [[1]], grid: [7, 2, 0, 0], foreground: on, background: black),
        ]
        let table = BackgroundCodes(examples)
        // Place 0 is never background; on white place 2 holds 6 twice and 4 once; on black place 1
        // ties 0 against 2 and takes the lower id.
        #expect(table.codes[white] == [-1, 3, 6, 5] && table.codes[black] == [-1, 0, 0, 0])
        #expect(table.plain(TokenizedExample(captions: [[1]], grid: [1, 1, 1, 1], foreground: [false, false, true, false], background: white)).grid
                    == [1, 3, 1, 5])
        let unknownColour = TokenizedExample(captions: [[1]], grid: [1, 1, 1, 1], foreground: on, background: 0x12_3456)
        #expect(table.plain(unknownColour).grid == [1, 1, 1, 1])
        #expect(table.plain(TokenizedExample(captions: [[1]], grid: [1, 1, 1, 1])).grid == [1, 1, 1, 1])
        var options = PriorTrainingOptions()
        options.plainBackground = true
        #expect(try JSONDecoder().decode(PriorTrainingOptions.self, from: try JSONEncoder().encode(options)).plainBackground)
        #expect(try !JSONDecoder().decode(PriorTrainingOptions.self, from: Data("{}".utf8)).plainBackground)
    }

    /// A config without self-conditioning writes no such key, so its text (which a resume
    /// compares) is what it was before the option existed; one with it reads back with it.
    @Test func selfConditioningIsWrittenOnlyWhenSet() throws {
        let plain = try JSONEncoder().encode(tinyDiffusionConfig())
        #expect(!String(decoding: plain, as: UTF8.self).contains("selfCondition"))
        let conditioned = try JSONEncoder().encode(tinyDiffusionConfig(selfCondition: true))
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: conditioned) == tinyDiffusionConfig(selfCondition: true))
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: plain) == tinyDiffusionConfig())
    }

    /// The caption's own encoder: written to the config only when there is one; every other
    /// starting value is drawn as without it; it changes what the prior predicts.
    @Test func textEncoderKeepsTheRestOfThePrior() throws {
        let plainText = String(decoding: try JSONEncoder().encode(tinyDiffusionConfig()), as: UTF8.self)
        #expect(!plainText.contains("textLayers"))
        let encoded = try JSONEncoder().encode(tinyDiffusionConfig(textLayers: 2))
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: encoded) == tinyDiffusionConfig(textLayers: 2))

        let plain = DiffusionPrior(config: tinyDiffusionConfig(), seed: 4)
        let withEncoder = DiffusionPrior(config: tinyDiffusionConfig(textLayers: 1), seed: 4)
        let names = Set(plain.parameters.entries.map(\.name))
        let extra = withEncoder.parameters.entries.filter { !names.contains($0.name) }
        #expect(!extra.isEmpty && extra.allSatisfy { $0.name.hasPrefix("diffusion.text_block0.") })
        for (a, b) in zip(plain.parameters.entries, withEncoder.parameters.entries.filter { names.contains($0.name) }) {
            #expect(a.name == b.name && a.tensor.values == b.tensor.values, "\(a.name)")
        }
        var weights = RandomGenerator(seed: 10)
        for entry in withEncoder.parameters.entries { weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1) }
        let noisy = Tensor(shape: [1, 6, 4], values: (0..<24).map { Float($0 % 5) / 5 })
        func predict() -> [Float] {
            let tape = Tape()
            defer { tape.reset() }
            return withEncoder.velocity(tape, noisy: noisy, timesteps: [40], text: withEncoder.textTokens([4, 5])).values
        }
        let before = predict()
        for entry in extra { entry.tensor.data.update(repeating: 0.05, count: entry.tensor.count) }
        #expect(predict() != before)
    }

    /// Without the pooled caption: the config says so (and only then), the prior has no pooling
    /// weights, and what it predicts no longer moves with the caption's mean word embedding alone.
    @Test func priorWithoutPooledCaptionHasNoPoolingPath() throws {
        let plainText = String(decoding: try JSONEncoder().encode(tinyDiffusionConfig()), as: UTF8.self)
        #expect(!plainText.contains("pooledCaption"))
        let unpooled = tinyDiffusionConfig(pooledCaption: false)
        let encoded = try JSONEncoder().encode(unpooled)
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: encoded) == unpooled)
        let pooled = DiffusionPrior(config: tinyDiffusionConfig(), seed: 4)
        let prior = DiffusionPrior(config: unpooled, seed: 4)
        #expect(pooled.parameters.entries.contains { $0.name.hasPrefix("diffusion.text_pool") })
        #expect(!prior.parameters.entries.contains { $0.name.hasPrefix("diffusion.text_pool") })
        // With attention switched off (zero output projections), the caption can reach the
        // latents only through the pooled vector: the pooled prior's prediction moves with the
        // caption, the unpooled one's does not.
        let noisy = Tensor(shape: [1, 6, 4], values: (0..<24).map { Float($0 % 5) / 5 })
        for (model, moves) in [(pooled, true), (prior, false)] {
            var weights = RandomGenerator(seed: 10)
            for entry in model.parameters.entries { weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1) }
            for entry in model.parameters.entries where entry.name.contains(".attention.output.") {
                entry.tensor.data.update(repeating: 0, count: entry.tensor.count)
            }
            func predict(_ words: [Int32]) -> [Float] {
                let tape = Tape()
                defer { tape.reset() }
                return model.velocity(tape, noisy: noisy, timesteps: [40], text: model.textTokens(words)).values
            }
            #expect((predict([4, 5]) != predict([6, 7])) == moves)
        }
    }

    /// Caption as context: written to the config only when set; the same weights predict
    /// differently with it, since later blocks then read the caption as it came in.
    @Test func captionContextIsWrittenOnlyWhenSetAndChangesThePrediction() throws {
        let plainText = String(decoding: try JSONEncoder().encode(tinyDiffusionConfig()), as: UTF8.self)
        #expect(!plainText.contains("captionContext"))
        let context = tinyDiffusionConfig(textLayers: 1, captionContext: true)
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: try JSONEncoder().encode(context)) == context)
        let noisy = Tensor(shape: [1, 6, 4], values: (0..<24).map { Float($0 % 5) / 5 })
        let predictions = [false, true].map { captionContext -> [Float] in
            let prior = DiffusionPrior(config: tinyDiffusionConfig(textLayers: 1, captionContext: captionContext), seed: 4)
            var weights = RandomGenerator(seed: 10)
            for entry in prior.parameters.entries { weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1) }
            let tape = Tape()
            defer { tape.reset() }
            return prior.velocity(tape, noisy: noisy, timesteps: [40], text: prior.textTokens([4, 5])).values
        }
        #expect(predictions[0] != predictions[1])
    }

    /// Cross-attention: written only when set, refused beside caption-as-context, and its
    /// weights are the only new ones.
    @Test func crossAttentionAddsOnlyItsOwnWeights() throws {
        let plainText = String(decoding: try JSONEncoder().encode(tinyDiffusionConfig()), as: UTF8.self)
        #expect(!plainText.contains("crossAttention"))
        let cross = tinyDiffusionConfig(crossAttention: true)
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: try JSONEncoder().encode(cross)) == cross)
        #expect(throws: TesseraError.self) { try tinyDiffusionConfig(captionContext: true, crossAttention: true).validate() }
        let plain = DiffusionPrior(config: tinyDiffusionConfig(), seed: 4)
        let withCross = DiffusionPrior(config: cross, seed: 4)
        let names = Set(plain.parameters.entries.map(\.name))
        let extra = withCross.parameters.entries.filter { !names.contains($0.name) }
        #expect(!extra.isEmpty && extra.allSatisfy { $0.name.contains(".cross_") })
        #expect(withCross.parameters.entries.count - extra.count == plain.parameters.entries.count)
    }

    /// The flat caption vector: written only when set, its projection the only new weight and,
    /// beside the pooled mean, zero at the start (so the prior first predicts exactly what the
    /// plain one does), and, with
    /// attention switched off, it alone tells two orders of the same words apart.
    @Test func flatCaptionStartsAtZeroAndKnowsWordOrder() throws {
        let plainText = String(decoding: try JSONEncoder().encode(tinyDiffusionConfig()), as: UTF8.self)
        #expect(!plainText.contains("flatCaption"))
        let flatConfig = tinyDiffusionConfig(flatCaption: true)
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: try JSONEncoder().encode(flatConfig)) == flatConfig)
        let plain = DiffusionPrior(config: tinyDiffusionConfig(), seed: 4)
        let flat = DiffusionPrior(config: flatConfig, seed: 4)
        let names = Set(plain.parameters.entries.map(\.name))
        let extra = flat.parameters.entries.filter { !names.contains($0.name) }
        #expect(extra.map(\.name).sorted() == ["diffusion.text_flat.bias", "diffusion.text_flat.weight"])
        #expect(extra.allSatisfy { entry in (0..<entry.tensor.count).allSatisfy { entry.tensor.data[$0] == 0 } })
        // Without the pooled mean it is the caption's only direct path, so it starts random.
        let alone = DiffusionPrior(config: tinyDiffusionConfig(pooledCaption: false, flatCaption: true), seed: 4)
        let aloneWeight = alone.parameters.entries.first { $0.name == "diffusion.text_flat.weight" }!.tensor
        #expect((0..<aloneWeight.count).contains { aloneWeight.data[$0] != 0 })
        let noisy = Tensor(shape: [1, 6, 4], values: (0..<24).map { Float($0 % 5) / 5 })
        func predict(_ model: DiffusionPrior, _ words: [Int32]) -> [Float] {
            let tape = Tape()
            defer { tape.reset() }
            return model.velocity(tape, noisy: noisy, timesteps: [40], text: model.textTokens(words)).values
        }
        // adaLN-Zero makes an untrained prior predict zeros whatever it reads, so give the
        // shared weights the same values in both first.
        for model in [plain, flat] {
            var weights = RandomGenerator(seed: 10)
            for entry in model.parameters.entries where !entry.name.hasPrefix("diffusion.text_flat") {
                weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1)
            }
        }
        #expect(predict(plain, [1, 2]) == predict(flat, [1, 2]))
        for model in [plain, flat] {
            var weights = RandomGenerator(seed: 11)
            for entry in model.parameters.entries where entry.name.hasPrefix("diffusion.text_flat") {
                weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1)
            }
            for entry in model.parameters.entries where entry.name.contains(".attention.output.") {
                entry.tensor.data.update(repeating: 0, count: entry.tensor.count)
            }
        }
        #expect(predict(plain, [1, 2]) == predict(plain, [2, 1]))
        #expect(predict(flat, [1, 2]) != predict(flat, [2, 1]))
    }

    /// The cell embedding: written only when set, one zero entry per patch cell as the only new
    /// weight (so the prior starts as the plain one), and, once trained away from zero, it moves
    /// the prediction of each cell on its own: changing one cell's entry changes only that
    /// position's prediction when attention is switched off.
    @Test func cellEmbeddingStartsAtZeroAndReachesOneCell() throws {
        let plainText = String(decoding: try JSONEncoder().encode(tinyDiffusionConfig()), as: UTF8.self)
        #expect(!plainText.contains("cellEmbedding"))
        let cellConfig = tinyDiffusionConfig(cellEmbedding: true)
        #expect(try JSONDecoder().decode(DiffusionPriorConfig.self, from: try JSONEncoder().encode(cellConfig)) == cellConfig)
        let plain = DiffusionPrior(config: tinyDiffusionConfig(), seed: 4)
        let cells = DiffusionPrior(config: cellConfig, seed: 4)
        let names = Set(plain.parameters.entries.map(\.name))
        let extra = cells.parameters.entries.filter { !names.contains($0.name) }
        #expect(extra.map(\.name) == ["diffusion.cell_embedding"] && extra[0].tensor.shape == [6, 16])
        #expect((0..<extra[0].tensor.count).allSatisfy { extra[0].tensor.data[$0] == 0 })
        for model in [plain, cells] {
            var weights = RandomGenerator(seed: 10)
            for entry in model.parameters.entries where entry.name != "diffusion.cell_embedding" {
                weights.fillNormal(entry.tensor.data, count: entry.tensor.count, std: 0.1)
            }
            for entry in model.parameters.entries where entry.name.contains(".attention.output.") {
                entry.tensor.data.update(repeating: 0, count: entry.tensor.count)
            }
        }
        let noisy = Tensor(shape: [1, 6, 4], values: (0..<24).map { Float($0 % 5) / 5 })
        func predict(_ model: DiffusionPrior) -> [Float] {
            let tape = Tape()
            defer { tape.reset() }
            return model.velocity(tape, noisy: noisy, timesteps: [40], text: model.textTokens([1, 2])).values
        }
        let before = predict(cells)
        #expect(before == predict(plain))
        (extra[0].tensor.data + 4 * 16).update(repeating: 0.5, count: 16)  // cell 4: row 1, column 1
        let after = predict(cells)
        let moved = (0..<6).filter { cell in (0..<4).contains { before[cell * 4 + $0] != after[cell * 4 + $0] } }
        #expect(moved == [4], "cells whose prediction moved: \(moved)")
    }

    /// Two captions of the same words in another order ask for different grids: the pooled
    /// caption (a bag of words) cannot tell them apart, attention to the caption's tokens can.
    @Test(arguments: [(false, false), (true, false), (false, true)])
    func wordOrderReachesTheLatentsThroughAttention(pooledCaption: Bool, crossAttention: Bool) {
        var options = PriorTrainingOptions()
        options.steps = 600
        options.batchSize = 8
        options.learningRate = 3e-3
        options.warmupSteps = 20
        var config = tinyDiffusionConfig(pooledCaption: pooledCaption, crossAttention: crossAttention)
        config.captionDropout = 0
        let prior = DiffusionPrior(config: config, seed: 5)
        let grids: [[Int32]] = [[0, 1, 2, 3, 4, 5], [7, 7, 6, 6, 5, 5]]
        let examples = [TokenizedExample(captions: [[1, 2]], grid: grids[0]), TokenizedExample(captions: [[2, 1]], grid: grids[1])]
        let trainer = DiffusionTrainer(prior: prior, codeVectors: tinyCodeVectors, options: options, workers: 1)
        trainer.measureStatistics(examples)
        for _ in 0..<options.steps { _ = trainer.train(examples) }
        let (last, uncaptioned) = (trainer.validationLoss(examples), trainer.validationLoss(examples, captions: false))
        #expect(last < uncaptioned / 2, "validation v error \(last), \(uncaptioned) with the captions dropped")
        let text = prior.textTokens([1, 2]) + prior.textTokens([2, 1])
        var rng = RandomGenerator(seed: 6)
        let latents = prior.sample(text: text, options: DiffusionSamplingOptions(steps: 25), rng: &rng)
        let drawn = snapToCodes(prior.denormalize(latents), codeVectors: tinyCodeVectors, dimension: 4)
        let right = zip(drawn, grids.flatMap { $0 }).filter { $0 == $1 }.count
        #expect(right >= 10, "drew \(drawn)")
    }
}
