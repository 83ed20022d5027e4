// BENCH.md case (e): one training step of a DiT denoiser — 32 text tokens in the sequence with
// 256 latent positions of 64 channels (16×16, patch 1), full attention, adaLN blocks, d = 256,
// 8 layers, 8 heads, MLP 4×, B = 8, AdamW — run through Tessera's own diffusion trainer
// (v-prediction; the peer predicts ε, the same work). The latents are code vectors of random
// grids over a random 512-code book, standing in for the peer's random x₀.
import Foundation
import TesseraModels
import TesseraTensor

func benchDiTTrain(_ report: (Measurement) -> Void) {
    let (batch, textLength, side, channels, codes) = (8, 32, 16, 64, 512)
    let config = DiffusionPriorConfig(textLength: textLength, textVocabularySize: 1024, gridHeight: side, gridWidth: side,
                                      codebookSize: codes, latentChannels: channels, width: 256, layers: 8, numHeads: 8,
                                      captionDropout: 0.1, diffusionSteps: 1000)
    var rng = RandomGenerator(seed: 5)
    var codeVectors = [Float](repeating: 0, count: codes * channels)
    codeVectors.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, count: $0.count) }
    let examples = (0..<64).map { _ in
        TokenizedExample(captions: [(0..<20).map { _ in Int32(rng.int(below: 1024)) }],
                         grid: (0..<side * side).map { _ in Int32(rng.int(below: codes)) })
    }
    var options = PriorTrainingOptions()
    options.batchSize = batch
    options.learningRate = 1e-4
    let trainer = DiffusionTrainer(prior: DiffusionPrior(config: config, seed: 6), codeVectors: codeVectors, options: options)
    trainer.measureStatistics(examples)
    let ms = medianMilliseconds { _ = trainer.train(examples) }
    report(Measurement(caseName: "dit-train", variant: "step", milliseconds: ms,
                       figures: [("tokens_per_s", .number(Double(batch * (textLength + side * side)) * 1000 / ms))]))
}
