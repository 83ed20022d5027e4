// Seconds per picture of the two priors as Tessera ships them (6 layers of width 192, 6 heads,
// 32 text positions, a 16×16 grid of 512 codes of dimension 16; the diffusion prior's in 2×2
// patches, with 3 text layers, the caption as context, the flat caption vector, cell embeddings
// and a token head, which sampling does not run): the AR prior writing 256 tokens over its KV
// cache at the default sampling settings, and the diffusion prior at its defaults (25 DDIM
// steps, guidance, so two rows a step); one picture at a time. Weights are freshly initialised: the work per picture does not depend on them.
import Foundation
import TesseraModels
import TesseraTensor

func benchPriorSample(_ report: (Measurement) -> Void) {
    let (textLength, vocabulary, side, codes, dimension) = (32, 1024, 16, 512, 16)
    let ar = ARPrior(config: ARPriorConfig(textLength: textLength, textVocabularySize: vocabulary, gridHeight: side,
                                           gridWidth: side, codebookSize: codes), seed: 1)
    let diffusion = DiffusionPrior(config: DiffusionPriorConfig(textLength: textLength, textVocabularySize: vocabulary,
                                                                gridHeight: side, gridWidth: side, codebookSize: codes,
                                                                latentChannels: dimension, patchSize: 2, textLayers: 3,
                                                                pooledCaption: false, captionContext: true, flatCaption: true,
                                                                cellEmbedding: true, tokenLossWeight: 0.1), seed: 2)
    let text = ar.textTokens([5, 17, 42, 7])
    let arMs = medianMilliseconds(minimumRepetitions: 5, minimumSeconds: 1) {
        var rng = RandomGenerator(seed: 3)
        _ = ar.sample(text: text, options: SamplingOptions(temperature: 0.7, topK: 8), rng: &rng)
    }
    report(Measurement(caseName: "prior-sample", variant: "ar", milliseconds: arMs,
                       figures: [("seconds_per_image", .number(arMs / 1000))]))
    let options = DiffusionSamplingOptions(guidance: SamplingArguments.diffusionGuidance)
    let diffusionMs = medianMilliseconds(minimumRepetitions: 5, minimumSeconds: 1) {
        var rng = RandomGenerator(seed: 4)
        _ = diffusion.sample(text: text, options: options, rng: &rng)
    }
    report(Measurement(caseName: "prior-sample", variant: "diffusion-\(options.steps)", milliseconds: diffusionMs,
                       figures: [("seconds_per_image", .number(diffusionMs / 1000))]))
}
