// Training the diffusion prior on (caption, token grid) pairs: a grid becomes its code vectors
// (channels last), normalised with the prior's statistics; each item gets a caption (or the
// empty one), a noise level drawn uniformly from 1…T and Gaussian noise, all from the
// trainer's generator, so a resumed run draws the very same batches. Data-parallel like the AR
// trainer. With `weightAverageDecay`, an exponential moving average of the weights follows the
// updates; validation and the saved prior use it.
import Foundation
import TesseraKernels
import TesseraTensor

public final class DiffusionTrainer {
    public let prior: DiffusionPrior
    public let options: PriorTrainingOptions
    /// The autoencoder's code vectors (K·D), which turn a token grid into a latent.
    let codeVectors: [Float]
    let optimizer: AdamW
    let schedule: LearningRateSchedule
    /// The workers' models: the prior itself, then replicas of it.
    let workers: [DiffusionPrior]
    /// The moving average of the prior's weights, one tensor per parameter in store order
    /// (empty without `weightAverageDecay`).
    public let averages: [Tensor]
    public private(set) var rng: RandomGenerator
    public private(set) var step = 0

    public init(prior: DiffusionPrior, codeVectors: [Float], options: PriorTrainingOptions, workers: Int = Threads.count) {
        precondition(codeVectors.count == prior.config.codebookSize * prior.config.latentChannels,
                     "DiffusionTrainer: \(codeVectors.count) code vector values for K = \(prior.config.codebookSize), D = \(prior.config.latentChannels)")
        self.prior = prior
        self.codeVectors = codeVectors
        self.options = options
        optimizer = AdamW(parameters: prior.parameters,
                          hyper: AdamWHyperparameters(learningRate: options.learningRate, beta1: 0.9, beta2: 0.99, weightDecay: 0.01))
        schedule = LearningRateSchedule(peak: options.learningRate, minimum: options.learningRate / 10,
                                        warmupSteps: options.warmupSteps, totalSteps: options.steps)
        averages = options.weightAverageDecay > 0
            ? prior.parameters.entries.map { Tensor(shape: $0.tensor.shape, values: $0.tensor.values) } : []
        rng = RandomGenerator(seed: options.seed)
        self.workers = [prior] + (1..<max(1, min(workers, options.batchSize))).map { _ in DiffusionPrior(replicaOf: prior) }
    }

    /// A token grid's code vectors, (h·w, D) channels last, not normalised.
    public func latent(of grid: [Int32]) -> [Float] {
        let d = prior.config.latentChannels
        return grid.flatMap { codeVectors[Int($0) * d..<(Int($0) + 1) * d] }
    }

    /// The v error's weight of each of an example's latent values, (h·w, D) like `latent(of:)`:
    /// `objectWeight` at its foreground positions, 1 elsewhere (everywhere, when its foreground
    /// is not known).
    public func positionWeights(of example: TokenizedExample) -> [Float] {
        let d = prior.config.latentChannels
        guard let foreground = example.foreground else { return [Float](repeating: 1, count: example.grid.count * d) }
        return foreground.flatMap { [Float](repeating: $0 ? options.objectWeight : 1, count: d) }
    }

    /// Sets the prior's latent statistics from the examples' grids (before the first step).
    public func measureStatistics(_ examples: [TokenizedExample]) {
        prior.setStatistics(from: examples.flatMap { latent(of: $0.grid) })
    }

    /// One update; returns the batch's mean squared error of v and, with a token head, its
    /// tokens' cross-entropy.
    public func train(_ examples: [TokenizedExample]) -> (velocity: Float, tokens: Float) {
        let size = options.batchSize, (n, d) = (prior.config.imageLength, prior.config.latentChannels)
        var text: [Int32] = [], clean: [Float] = [], timesteps: [Int] = [], selfConditioned: [Bool] = []
        var weights: [Float] = [], grids: [Int32] = []
        for _ in 0..<size {
            let example = examples[rng.int(below: examples.count)]
            text += prior.textTokens(options.drawCaption(from: example.captions, dropout: prior.config.captionDropout, rng: &rng))
            clean += prior.normalize(latent(of: example.grid))
            if options.objectWeight != 1 { weights += positionWeights(of: example) }
            if prior.config.tokenLossWeight > 0 { grids += example.grid }
            timesteps.append(options.drawTimestep(steps: prior.config.diffusionSteps, rng: &rng))
            // Half the items see their own estimate, as Chen et al. train (drawn only then, so a
            // prior without self-conditioning draws the batches it always drew).
            if prior.config.selfCondition { selfConditioned.append(rng.uniform() < 0.5) }
        }
        var noise = [Float](repeating: 0, count: clean.count)
        noise.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, count: $0.count) }
        let t = prior.config.textLength
        var losses = [(velocity: Float, tokens: Float)](repeating: (0, 0), count: workers.count)
        losses.withUnsafeMutableBufferPointer { losses in
            DataParallel.backward(workers.map(\.parameters), batch: size) { w, share, tape in
                let values = share.lowerBound * n * d..<share.upperBound * n * d
                let loss = workers[w].loss(tape, clean: Array(clean[values]), noise: Array(noise[values]),
                                           timesteps: Array(timesteps[share]),
                                           text: Array(text[share.lowerBound * t..<share.upperBound * t]),
                                           selfConditioned: selfConditioned.isEmpty ? [] : Array(selfConditioned[share]),
                                           weights: weights.isEmpty ? nil : Array(weights[values]),
                                           tokens: grids.isEmpty ? nil : Array(grids[share.lowerBound * n..<share.upperBound * n]))
                let share = Float(share.count) / Float(size)
                losses[w] = (loss.velocity * share, loss.tokens * share)
                return loss.total
            }
        }
        optimizer.update(learningRate: schedule.rate(at: step), maxGradientNorm: 1)
        step += 1
        updateAverages()
        return (losses.map(\.velocity).reduce(0, +), losses.map(\.tokens).reduce(0, +))
    }

    /// average ← d·average + (1 − d)·weights, with d held below (1 + step)/(10 + step) so the
    /// first updates' average is not dominated by the initial weights (as timm's and DiT's).
    func updateAverages() {
        guard !averages.isEmpty else { return }
        let decay = min(options.weightAverageDecay, Float(1 + step) / Float(10 + step))
        for (average, entry) in zip(averages, prior.parameters.entries) {
            let (a, w) = (average.data, entry.tensor.data)
            for i in 0..<average.count { a[i] = decay * a[i] + (1 - decay) * w[i] }
        }
    }

    /// Runs `body` with the averaged weights in the prior (and so in its replicas, which share
    /// its values), then puts the trained weights back; without an average, just runs `body`.
    public func withAveragedWeights<T>(_ body: () throws -> T) rethrows -> T {
        func exchange() {
            for (average, entry) in zip(averages, prior.parameters.entries) {
                let (a, w) = (average.data, entry.tensor.data)
                for i in 0..<average.count { swap(&a[i], &w[i]) }
            }
        }
        exchange()
        defer { exchange() }
        return try body()
    }

    /// Mean squared error of v over examples (each with its first caption, or with none); see
    /// `validationErrors`.
    public func validationLoss(_ examples: [TokenizedExample], captions: Bool = true) -> Float {
        validationErrors(examples, captions: captions).mean
    }

    /// Mean squared error of v over examples (each with its first caption, or with none), in four
    /// bands of noise levels, least noise first, and over all of them, for the averaged weights
    /// when there are any (a self-conditioned prior sees its own estimate, as in sampling).
    /// Example i is noised to a level in band i mod 4, levels and noise drawn from a fixed seed,
    /// so successive validations compare like with like. The gap between captions and none says
    /// how much the prior uses the caption; in the noisiest band the caption is nearly all the
    /// prior has to go on.
    public func validationErrors(_ examples: [TokenizedExample], captions: Bool = true) -> (mean: Float, bands: [Float]) {
        withAveragedWeights { validationErrorsOfCurrentWeights(examples, captions: captions) }
    }

    private func validationErrorsOfCurrentWeights(_ examples: [TokenizedExample], captions: Bool) -> (mean: Float, bands: [Float]) {
        var fixed = RandomGenerator(seed: 0x5eed)
        let (n, d, levels) = (prior.config.imageLength, prior.config.latentChannels, prior.config.diffusionSteps)
        let bandCount = 4
        func band(_ q: Int) -> ClosedRange<Int> { (1 + q * levels / bandCount)...max(1 + q * levels / bandCount, (q + 1) * levels / bandCount) }
        let timesteps = examples.indices.map { i in
            let levels = band(i % bandCount)
            return levels.lowerBound + fixed.int(below: levels.count)
        }
        var noise = [Float](repeating: 0, count: examples.count * n * d)
        noise.withUnsafeMutableBufferPointer { fixed.fillNormal($0.baseAddress!, count: $0.count) }
        var total = 0.0, bands = [Float]()
        for q in 0..<min(bandCount, examples.count) {
            let members = Array(stride(from: q, to: examples.count, by: bandCount))
            let error = DataParallel.mean(count: members.count, batchSize: options.batchSize, workers: workers.count) { w, range in
                let items = members[range]
                let tape = Tape()
                defer { tape.reset() }
                return Double(workers[w].loss(tape, clean: items.flatMap { prior.normalize(latent(of: examples[$0].grid)) },
                                              noise: items.flatMap { Array(noise[$0 * n * d..<($0 + 1) * n * d]) },
                                              timesteps: items.map { timesteps[$0] },
                                              text: items.flatMap { prior.textTokens(captions ? examples[$0].captions[0] : []) },
                                              selfConditioned: [Bool](repeating: true, count: items.count)).velocity)
            }
            bands.append(Float(error))
            total += error * Double(members.count)
        }
        return (Float(total / Double(max(1, examples.count))), bands)
    }

    /// The averaged weights under checkpoint names.
    var averageBuffers: [(name: String, tensor: Tensor)] {
        zip(prior.parameters.entries, averages).map { ("average." + $0.name, $1) }
    }

    public func saveCheckpoint(to path: String, metadata: [String: String]) throws {
        try PairCheckpoint.save(to: path, part: "diffusion", config: prior.config, options: options, optimizer: optimizer,
                                buffers: prior.buffers + averageBuffers, step: step, rng: rng, metadata: metadata)
    }

    /// Restores a checkpoint; one saved without an average (or by a run that kept none) starts
    /// the average from the restored weights.
    public func restoreCheckpoint(from path: String) throws -> [String: String] {
        let file = try SafetensorsFile(path: path)
        let hasAverages = !averages.isEmpty && file.entries.contains { $0.name == averageBuffers[0].name }
        let state = try PairCheckpoint.restore(from: path, part: "diffusion", label: "diffusion prior", config: prior.config,
                                               optimizer: optimizer, buffers: prior.buffers + (hasAverages ? averageBuffers : []))
        if !hasAverages {
            for (average, entry) in zip(averages, prior.parameters.entries) {
                average.data.update(from: entry.tensor.data, count: average.count)
            }
        }
        step = state.step
        rng = state.rng
        return state.metadata
    }
}
