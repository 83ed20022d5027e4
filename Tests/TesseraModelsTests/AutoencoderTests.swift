// The autoencoder and its quantizers: shapes through encoder and decoder, nearest-code choice,
// straight-through gradients, the EMA update, dead-code restarts, the Gumbel relaxation, a tiny
// model overfitting a few pictures, exact resume, and model files that refuse to load when bad.
import Foundation
import Testing
import TesseraData
import TesseraModels
import TesseraTensor

/// A model small enough to train in a test: 16 px pictures, a 4×4 grid, 16 codes.
func tinyConfig(_ quantizer: QuantizerKind = .vq) -> AutoencoderConfig {
    let config = AutoencoderConfig(imageSize: 16, channels: [8, 16, 16], encoderBlocks: [0, 1, 1], decoderBlocks: [0, 1, 1],
                                   groups: 4, quantizer: quantizer, codebookSize: 16, codeDimension: 4)
    return quantizer == .fsq ? config.withLevels([2, 2, 2, 2]) : config
}

/// A fresh folder under the system's temporary directory; the caller removes it.
func temporaryFolder(_ label: String) throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    return folder
}

/// Pictures of flat colour blocks, (3, 16, 16) each in [−1, 1].
func blockPictures(_ count: Int, seed: UInt64) -> [[Float]] {
    var rng = RandomGenerator(seed: seed)
    return (0..<count).map { _ in
        let colors = (0..<6).map { _ in rng.uniform() * 2 - 1 }
        let split = 4 + rng.int(below: 8)
        return (0..<3).flatMap { c in (0..<256).map { p in p % 16 < split ? colors[c] : colors[3 + c] } }
    }
}

@Suite struct AutoencoderShapes {
    @Test(arguments: QuantizerKind.allCases)
    func encoderAndDecoderShapes(kind: QuantizerKind) throws {
        var config = AutoencoderConfig(imageSize: 32, channels: [8, 8, 16, 16], encoderBlocks: [1, 0, 1, 1],
                                       decoderBlocks: [0, 1, 0, 2], groups: 4, quantizer: kind, codebookSize: 10, codeDimension: 3)
        if kind == .fsq { config = config.withLevels([2, 5]) }
        try config.validate()
        let d = config.codeDimension
        #expect(config.gridSize == 4 && config.downsampling == 8)
        let model = Autoencoder(config: config, seed: 1)
        let tape = Tape()
        let head = model.encode(tape, Tensor(shape: [2, 3, 32, 32]))
        #expect(head.shape == [2, kind == .gumbel ? 10 : d, 4, 4])
        #expect(model.decode(tape, Tensor(shape: [2, d, 4, 4])).shape == [2, 3, 32, 32])  // continuous latents too
        let codes = model.tokens(Tensor(shape: [2, 3, 32, 32]))
        #expect(codes.count == 32 && codes.allSatisfy { $0 >= 0 && $0 < 10 })
        #expect(model.pictures(tokens: codes, batch: 2).shape == [2, 3, 32, 32])
    }

    /// Per-position norm keeps each code to its receptive field (here 9 pixels: 3×3 input conv,
    /// a residual block's two 3×3 convs, a 3×3 stride-2 conv); group norm's statistics span the
    /// picture, so a change in one corner reaches every code.
    @Test(arguments: ConvNorm.allCases)
    func aPositionNormedEncoderSeesOnlyItsReceptiveField(norm: ConvNorm) {
        let config = AutoencoderConfig(imageSize: 32, channels: [8, 8], encoderBlocks: [1, 0], decoderBlocks: [0, 1],
                                       groups: 4, codebookSize: 16, codeDimension: 4, norm: norm)
        let model = Autoencoder(config: config, seed: 2)
        var rng = RandomGenerator(seed: 9)
        let picture = (0..<(3 * 32 * 32)).map { _ in rng.uniform() * 2 - 1 }
        var changed = picture
        for c in 0..<3 { for y in 0..<4 { for x in 0..<4 { changed[c * 1024 + y * 32 + x] = 1 } } }  // the top-left corner
        let tape = Tape()
        let head = model.encode(tape, Tensor(shape: [2, 3, 32, 32], values: picture + changed))  // (2, 4, 16, 16)
        var farthest: Float = 0  // the largest change in the bottom half of the grid, rows 8…15
        for c in 0..<4 { for y in 8..<16 { for x in 0..<16 {
            let index = (c * 16 + y) * 16 + x
            farthest = max(farthest, abs(head.data[index] - head.data[4 * 256 + index]))
        } } }
        #expect(norm == .position ? farthest == 0 : farthest > 1e-4, "\(farthest)")
    }

    @Test func invalidConfigsAreRefused() {
        var config = tinyConfig()
        config.channels = [8, 10, 16]  // 10 is not a multiple of 4 groups
        #expect(throws: TesseraError.self) { try config.validate() }
        config = tinyConfig()
        config.imageSize = 18  // not divisible by 4
        #expect(throws: TesseraError.self) { try config.validate() }
        config = tinyConfig()
        config.decoderBlocks = [1]
        #expect(throws: TesseraError.self) { try config.validate() }
    }
}

@Suite struct VectorQuantizerBehaviour {
    @Test func picksTheNearestCodeByCosine() {
        var rng = RandomGenerator(seed: 3)
        let quantizer = VectorQuantizer(config: tinyConfig(), rng: &rng)
        let head = Tensor(shape: [1, 4, 2, 3])  // (B, D, h, w)
        rng.fillNormal(head.data, count: head.count)
        let tape = Tape()
        let out = quantizer.quantize(tape, head, training: false, step: 0, totalSteps: 1, rng: &rng)
        let codebook = quantizer.codebook.values
        for p in 0..<6 {
            let z = (0..<4).map { head.data[$0 * 6 + p] }
            let similarity = (0..<16).map { k in (0..<4).reduce(Float(0)) { $0 + z[$1] * codebook[k * 4 + $1] } }
            let best = similarity.indices.max { similarity[$0] < similarity[$1] }!
            #expect(out.codes[p] == Int32(best))
            for c in 0..<4 { #expect(out.latent.data[c * 6 + p] == codebook[best * 4 + c]) }
        }
    }

    @Test func gradientPassesStraightThrough() {
        var rng = RandomGenerator(seed: 4)
        var config = tinyConfig()
        config.commitmentWeight = 0
        let quantizer = VectorQuantizer(config: config, rng: &rng)
        let z = Tensor(shape: [1, 4, 2, 2], requiresGrad: true)  // already unit length per position
        for p in 0..<4 { z.data[(p % 4) * 4 + p] = 1 }
        let tape = Tape()
        let out = quantizer.quantize(tape, z, training: false, step: 0, totalSteps: 1, rng: &rng)
        let upstream = (0..<16).map { Float($0) - 7.5 }
        tape.backward(out.latent, seed: upstream)
        // d(x/‖x‖) at unit x is the projection onto the tangent plane: g − x (x·g).
        for p in 0..<4 {
            let dot = upstream[(p % 4) * 4 + p]
            for c in 0..<4 {
                let expected = upstream[c * 4 + p] - (c == p % 4 ? dot : 0)
                #expect(abs(z.grad[c * 4 + p] - expected) < 1e-6)
            }
        }
    }

    @Test func emaUpdateFollowsTheFormula() {
        var rng = RandomGenerator(seed: 5)
        var config = tinyConfig()
        config.codebookSize = 2
        config.codeDimension = 2
        config.emaDecay = 0.9
        let quantizer = VectorQuantizer(config: config, rng: &rng)
        let sizesBefore = quantizer.clusterSizes.values, sumsBefore = quantizer.clusterSums.values
        let rows: [Float] = [1, 0, 0.6, 0.8, 0, 1]  // three positions, (P, D)
        quantizer.updateAverages(rows, [0, 0, 1])
        #expect(abs(quantizer.clusterSizes.values[0] - (0.9 * sizesBefore[0] + 0.1 * 2)) < 1e-6)
        #expect(abs(quantizer.clusterSizes.values[1] - (0.9 * sizesBefore[1] + 0.1 * 1)) < 1e-6)
        let sum0 = [0.9 * sumsBefore[0] + 0.1 * 1.6, 0.9 * sumsBefore[1] + 0.1 * 0.8]
        #expect(abs(quantizer.clusterSums.values[0] - sum0[0]) < 1e-6 && abs(quantizer.clusterSums.values[1] - sum0[1]) < 1e-6)
        let norm = (sum0[0] * sum0[0] + sum0[1] * sum0[1]).squareRoot()
        #expect(abs(quantizer.codebook.values[0] - sum0[0] / norm) < 1e-6)
        #expect(abs(quantizer.codebook.values[1] - sum0[1] / norm) < 1e-6)
    }

    @Test func trainingSeedsFromEncoderOutputsAndRestartsDeadCodes() {
        var rng = RandomGenerator(seed: 6)
        var config = tinyConfig()
        config.restartThreshold = 0.5
        config.emaDecay = 0.5
        let quantizer = VectorQuantizer(config: config, rng: &rng)
        let head = Tensor(shape: [1, 4, 4, 4])  // 16 positions, 16 codes
        rng.fillNormal(head.data, count: head.count)
        let tape = Tape()
        let first = quantizer.quantize(tape, head, training: true, step: 0, totalSteps: 10, rng: &rng)
        #expect(Set(first.codes).count == 16)  // seeded from these very positions: each finds its own code
        // The same single position over and over: every other code falls below the threshold
        // within a few steps and restarts at that position.
        let one = Tensor(shape: [1, 4, 1, 1], values: [0.5, -0.5, 0.5, 0.5])
        for step in 1...4 { _ = quantizer.quantize(tape, one, training: true, step: step, totalSteps: 10, rng: &rng) }
        let codebook = quantizer.codebook.values
        let nearOne = (0..<16).filter { k in
            (0..<4).reduce(Float(0)) { $0 + codebook[k * 4 + $1] * one.data[$1] } > 0.99
        }
        #expect(nearOne.count >= 14)
        tape.reset()
    }
}

@Suite struct FiniteScalarQuantizerBehaviour {
    @Test func roundsEachChannelToItsLevelAndPassesGradientsStraightThrough() throws {
        let config = tinyConfig().withLevels([3, 4])
        try config.validate()
        #expect(config.codebookSize == 12 && config.codeDimension == 2)
        let quantizer = Autoencoder(config: config, seed: 1).quantizer as! FiniteScalarQuantizer
        // Channel 0 has 3 levels: σ(z)·3 − ½ rounded; channel 1 has 4: σ(z)·4 − ½ rounded.
        let z: [Float] = [-3, 0, 3, -3, 0.2, 3]  // (1, 2, 1, 3): three positions
        let head = Tensor(shape: [1, 2, 1, 3], values: z, requiresGrad: true)
        let tape = Tape()
        var rng = RandomGenerator(seed: 0)
        let out = quantizer.quantize(tape, head, training: true, step: 0, totalSteps: 1, rng: &rng)
        func level(_ z: Float, _ count: Int) -> Int {
            let s = 1 / (1 + exp(-z))
            return min(count - 1, max(0, Int((s * Float(count)).rounded(.down))))
        }
        let expected = (0..<3).map { p in level(z[p], 3) * 4 + level(z[3 + p], 4) }
        #expect(out.codes == expected.map(Int32.init) && out.codes == [0, 6, 11])
        #expect(zip(out.latent.values, [-1, 0, 1, -1, 1.0 / 3, 1] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(quantizer.embed(out.codes, batch: 1, height: 1, width: 3).values == out.latent.values)
        #expect(out.loss.item == 0)
        // Straight through: d latent / d z is σ'(z)·L·2/(L − 1) for each channel.
        tape.backward(tape.sum(out.latent))
        for i in 0..<6 {
            let count: Float = i < 3 ? 3 : 4, s = 1 / (1 + exp(-z[i]))
            #expect(abs(head.gradValues[i] - s * (1 - s) * count * 2 / (count - 1)) < 1e-6)
        }
        tape.reset()
        // Every code's vector is distinct, and the table is what embed draws.
        let table = quantizer.codeVectors()
        let pairs: [[Float]] = (0..<12).map { (k: Int) -> [Float] in [table[2 * k], table[2 * k + 1]] }
        #expect(Set(pairs).count == 12)
        #expect(quantizer.embed(Array(0..<12).map(Int32.init), batch: 1, height: 3, width: 4).shape == [1, 2, 3, 4])
    }

    @Test func levelsMustMatchTheCodebook() {
        var config = tinyConfig(.fsq)
        config.levels = nil
        #expect(throws: TesseraError.self) { try config.validate() }
        config = tinyConfig(.fsq)
        config.codebookSize = 20
        #expect(throws: TesseraError.self) { try config.validate() }
        config = tinyConfig(.fsq).withLevels([1, 16])
        #expect(throws: TesseraError.self) { try config.validate() }
        config = tinyConfig()
        config.levels = [4, 4]
        #expect(throws: TesseraError.self) { try config.validate() }
    }
}

@Suite struct GumbelQuantizerBehaviour {
    @Test func temperatureAnnealsAndTrainingLatentIsSoft() {
        var config = tinyConfig(.gumbel)
        config.temperatureStart = 1
        config.temperatureEnd = 0.0625
        let model = Autoencoder(config: config, seed: 2)
        let quantizer = model.quantizer as! GumbelQuantizer
        #expect(quantizer.temperature(step: 0, totalSteps: 100) == 1)
        #expect(abs(quantizer.temperature(step: 40, totalSteps: 100) - 0.25) < 1e-6)
        #expect(abs(quantizer.temperature(step: 100, totalSteps: 100) - 0.0625) < 1e-6)
        var rng = RandomGenerator(seed: 9)
        let head = Tensor(shape: [1, 16, 2, 2], requiresGrad: true)
        rng.fillNormal(head.data, count: head.count)
        let tape = Tape()
        let out = quantizer.quantize(tape, head, training: true, step: 0, totalSteps: 100, rng: &rng)
        #expect(out.latent.shape == [1, 4, 2, 2] && out.loss.item >= 0)
        tape.backward(tape.add(tape.sum(out.latent), out.loss))
        #expect(head.gradValues.contains { $0 != 0 })  // the relaxation lets gradients reach the logits
        // Inference uses the argmax code's embedding.
        let hard = quantizer.quantize(tape, head, training: false, step: 0, totalSteps: 100, rng: &rng)
        let best = (0..<16).max { head.data[$0 * 4] < head.data[$1 * 4] }!
        #expect(hard.codes[0] == Int32(best))
        #expect(hard.latent.data[0] == quantizer.embedding.data[best * 4])
        tape.reset()
    }
}

@Suite struct AutoencoderTraining {
    @Test(arguments: QuantizerKind.allCases)
    func tinyModelOverfitsAFewPictures(kind: QuantizerKind) {
        var options = AutoencoderTrainingOptions()
        options.steps = 300
        options.batchSize = 4
        options.learningRate = 3e-3
        options.warmupSteps = 20
        let model = Autoencoder(config: tinyConfig(kind), seed: 3)
        let trainer = AutoencoderTrainer(model: model, options: options)
        let pictures = blockPictures(4, seed: 11)
        let before = model.score(pictures: pictures, captions: []).psnr
        for _ in 0..<options.steps { _ = trainer.train(pixels: Array(pictures.joined())) }
        let after = model.score(pictures: pictures, captions: [])
        #expect(after.psnr > before + 8 && after.psnr > 24, "PSNR \(before) → \(after.psnr) dB")
    }

    @Test func edgePixelsAreThoseBesideAnotherColour() {
        // White 6×6 with a 2×2 red block at rows and columns 2–3: the block's 4 pixels and the
        // 8 beside its sides differ from a 4-neighbour; the block's diagonal neighbours do not.
        let red: [Float] = [0.7, -0.7, -0.7]
        let x = Tensor(shape: [1, 3, 6, 6], values: (0..<3).flatMap { c in
            (0..<36).map { p in (2...3).contains(p / 6) && (2...3).contains(p % 6) ? red[c] : 1 }
        })
        let weights = AutoencoderTrainer.edgeWeights(x, weight: 5)
        for p in 0..<36 {
            let (row, column) = (p / 6, p % 6)
            let besideBlock = ((2...3).contains(row) && (1...4).contains(column))
                || ((2...3).contains(column) && (1...4).contains(row))
            for c in 0..<3 { #expect(weights.values[c * 36 + p] == (besideBlock ? 5 : 1), "pixel (\(row), \(column))") }
        }
    }

    @Test func resumeContinuesExactly() throws {
        var options = AutoencoderTrainingOptions()
        options.steps = 6
        options.batchSize = 2
        options.adversarialWeight = 0.1
        options.adversarialStart = 2
        options.flip = true
        options.edgeWeight = 3
        let pictures = blockPictures(2, seed: 12)
        let batch = Array(pictures.joined())
        let folder = try temporaryFolder("ae")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/checkpoint.safetensors"

        let first = AutoencoderTrainer(model: Autoencoder(config: tinyConfig(), seed: 4), options: options)
        for _ in 0..<3 { _ = first.train(pixels: batch) }
        try first.saveCheckpoint(to: path, metadata: ["loader.position": "7"])
        let straight = (0..<3).map { _ in first.train(pixels: batch) }

        let second = AutoencoderTrainer(model: Autoencoder(config: tinyConfig(), seed: 99), options: options)
        let metadata = try second.restoreCheckpoint(from: path)
        #expect(metadata["loader.position"] == "7" && second.step == 3)
        let resumed = (0..<3).map { _ in second.train(pixels: batch) }
        #expect(straight.map(\.reconstruction) == resumed.map(\.reconstruction))
        #expect(straight.map(\.discriminator) == resumed.map(\.discriminator))
        #expect(first.model.parameters.entries.map(\.tensor.values) == second.model.parameters.entries.map(\.tensor.values))
    }

    @Test(arguments: QuantizerKind.allCases)
    func decoderFineTuningKeepsTheTokens(kind: QuantizerKind) {
        let pictures = blockPictures(4, seed: 21)
        let batch = Array(pictures.joined())
        let model = Autoencoder(config: tinyConfig(kind), seed: 6)
        var options = AutoencoderTrainingOptions()
        options.steps = 5
        options.batchSize = 4
        let pretraining = AutoencoderTrainer(model: model, options: options)
        for _ in 0..<options.steps { _ = pretraining.train(pixels: batch) }

        let x = Tensor(shape: [4, 3, 16, 16], values: batch)
        let tokensBefore = model.tokens(x)
        let fixedBefore = model.namedTensors.filter { !$0.name.hasPrefix(Autoencoder.decoderPrefix) }.map(\.tensor.values)
        let decoderBefore = model.namedTensors.filter { $0.name.hasPrefix(Autoencoder.decoderPrefix) }.map(\.tensor.values)
        let psnrBefore = model.score(pictures: pictures, captions: []).psnr
        options.steps = 60
        options.warmupSteps = 5
        options.learningRate = 3e-3
        options.decoderOnly = true
        let fineTuning = AutoencoderTrainer(model: model, options: options)
        for _ in 0..<options.steps { _ = fineTuning.train(pixels: batch) }

        #expect(model.tokens(x) == tokensBefore)
        #expect(model.namedTensors.filter { !$0.name.hasPrefix(Autoencoder.decoderPrefix) }.map(\.tensor.values) == fixedBefore)
        #expect(model.namedTensors.filter { $0.name.hasPrefix(Autoencoder.decoderPrefix) }.map(\.tensor.values) != decoderBefore)
        let psnrAfter = model.score(pictures: pictures, captions: []).psnr
        #expect(psnrAfter > psnrBefore + 3, "PSNR \(psnrBefore) → \(psnrAfter) dB")
    }

    @Test func aNewDecoderKeepsTheTokensAndStartsFromTheOldOne() {
        let pictures = blockPictures(4, seed: 22)
        let model = Autoencoder(config: tinyConfig(), seed: 8)
        var options = AutoencoderTrainingOptions()
        options.steps = 5
        options.batchSize = 4
        let trainer = AutoencoderTrainer(model: model, options: options)
        for _ in 0..<options.steps { _ = trainer.train(pixels: Array(pictures.joined())) }
        let x = Tensor(shape: [4, 3, 16, 16], values: Array(pictures.joined()))
        let tokens = model.tokens(x)
        let drawn = model.pictures(tokens: tokens, batch: 4).values

        // More blocks, the same channels: the new blocks start as the identity.
        var deeper = model.config
        deeper.decoderBlocks = [1, 2, 2]
        let grown = model.withNewDecoder(deeper, seed: 3)
        #expect(grown.config.decoderBlocks == [1, 2, 2])
        #expect(grown.parameters.scalarCount > model.parameters.scalarCount)
        #expect(grown.tokens(x) == tokens)
        #expect(grown.pictures(tokens: tokens, batch: 4).values == drawn)

        // Other channels: a fresh decoder (it draws something else), the same tokens.
        var wider = model.config
        wider.decoderChannels = [16, 16, 32]
        let widened = model.withNewDecoder(wider, seed: 3)
        #expect(widened.tokens(x) == tokens)
        #expect(widened.parameters["decoder.output.weight"]?.shape == [3, 16, 3, 3])
        #expect(widened.pictures(tokens: tokens, batch: 4).values != drawn)

        // An alpha output: the same tokens, every other decoder layer copied, a fresh last layer.
        var layered = model.config
        layered.decoderOutput = .alpha
        let alpha = model.withNewDecoder(layered, seed: 3)
        #expect(alpha.tokens(x) == tokens)
        #expect(alpha.parameters["decoder.output.weight"]?.shape == [7, 8, 3, 3])
        for entry in model.parameters.entries where !entry.name.hasPrefix("decoder.output.") {
            #expect(alpha.parameters[entry.name]?.values == entry.tensor.values, "\(entry.name)")
        }
    }

    @Test func anAlphaDecoderMixesTwoColoursByOneCoverage() throws {
        var config = tinyConfig()
        config.decoderOutput = .alpha
        try config.validate()
        let model = Autoencoder(config: config, seed: 5)
        let weight = try #require(model.parameters["decoder.output.weight"]), bias = try #require(model.parameters["decoder.output.bias"])
        weight.data.update(repeating: 0, count: weight.count)
        let (foreground, background): ([Float], [Float]) = ([0.5, -0.25, 1], [-1, 0.75, 0])
        for (c, value) in (foreground + background).enumerated() { bias.data[1 + c] = value }
        for (coverage, logit) in [(Float(0.5), Float(0)), (1 / (1 + exp(-2)), 2)] {
            bias.data[0] = logit
            let picture = model.decode(Tape(), Tensor(shape: [1, 4, 4, 4])).values  // (1, 3, 16, 16)
            for c in 0..<3 {
                let expected = background[c] + coverage * (foreground[c] - background[c])
                #expect(picture[(c * 256)..<((c + 1) * 256)].allSatisfy { abs($0 - expected) < 1e-6 }, "channel \(c)")
            }
        }
    }

    @Test func decoderFineTuningResumesExactly() throws {
        var options = AutoencoderTrainingOptions()
        options.steps = 6
        options.batchSize = 2
        options.decoderOnly = true
        let batch = Array(blockPictures(2, seed: 13).joined())
        let folder = try temporaryFolder("ae")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/checkpoint.safetensors"

        let first = AutoencoderTrainer(model: Autoencoder(config: tinyConfig(), seed: 4), options: options)
        for _ in 0..<3 { _ = first.train(pixels: batch) }
        try first.saveCheckpoint(to: path, metadata: [:])
        let straight = (0..<3).map { _ in first.train(pixels: batch).reconstruction }

        // Another seed: the frozen encoder and codebook must come back from the checkpoint too.
        let second = AutoencoderTrainer(model: Autoencoder(config: tinyConfig(), seed: 99), options: options)
        _ = try second.restoreCheckpoint(from: path)
        let resumed = (0..<3).map { _ in second.train(pixels: batch).reconstruction }
        #expect(straight == resumed)
        #expect(first.model.namedTensors.map(\.tensor.values) == second.model.namedTensors.map(\.tensor.values))
    }
}

@Suite struct AutoencoderFiles {
    @Test func savedModelLoadsWithHalfPrecisionWeights() throws {
        let folder = try temporaryFolder("model")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let model = Autoencoder(config: tinyConfig(), seed: 5)
        try model.save(to: folder + "/" + ModelManifest.autoencoderFile)
        try ModelManifest(name: "tiny", autoencoder: model.config).write(directory: folder)
        let (loaded, manifest) = try Autoencoder.load(modelDirectory: folder)
        #expect(manifest.name == "tiny" && manifest.grid == [4, 4] && manifest.codebookSize == 16)
        // The tokenizer's folder: relative to the model directory, or absolute as written.
        var named = manifest
        #expect(named.tokenizerDirectory(in: folder) == nil)
        named.tokenizer = "../Vocab/tiny"
        #expect(named.tokenizerDirectory(in: "/m/tiny") == "/m/tiny/../Vocab/tiny")
        named.tokenizer = "/opt/Vocab/tiny"
        #expect(named.tokenizerDirectory(in: "/m/tiny") == "/opt/Vocab/tiny")
        for (a, b) in zip(model.parameters.entries, loaded.parameters.entries) {
            #expect(a.name == b.name)
            #expect(zip(a.tensor.values, b.tensor.values).allSatisfy { abs($0 - $1) <= abs($0) * 1e-3 + 1e-7 })
        }
    }

    @Test func truncatedOrCorruptModelFilesAreErrors() throws {
        let folder = try temporaryFolder("model")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let model = Autoencoder(config: tinyConfig(), seed: 5)
        let path = folder + "/" + ModelManifest.autoencoderFile
        try model.save(to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: path))
        #expect(throws: TesseraError.self) { try Autoencoder.load(path: path) }
        // No model.json: not a model directory.
        #expect(throws: TesseraError.self) { try Autoencoder.load(modelDirectory: folder) }
        try Data("{\"kind\":\"tessera-model\"".utf8).write(to: URL(fileURLWithPath: folder + "/model.json"))
        do {
            _ = try Autoencoder.load(modelDirectory: folder)
            Issue.record("a truncated model.json loaded")
        } catch let error as TesseraError {
            #expect(error.description.contains("model.json"))
        }
    }

    @Test func corruptCheckpointIsAnErrorAndChangesNothing() throws {
        let folder = try temporaryFolder("model")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = AutoencoderTrainer(model: Autoencoder(config: tinyConfig(), seed: 6), options: AutoencoderTrainingOptions())
        let path = folder + "/checkpoint.safetensors"
        try trainer.saveCheckpoint(to: path, metadata: [:])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[10] = UInt8(ascii: "!")  // breaks the JSON header
        try bytes.write(to: URL(fileURLWithPath: path))
        let before = trainer.model.parameters.entries.map(\.tensor.values)
        #expect(throws: TesseraError.self) { _ = try trainer.restoreCheckpoint(from: path) }
        #expect(trainer.model.parameters.entries.map(\.tensor.values) == before)
    }
}
