// Training checkpoints: parameters, AdamW's moments and step, the data RNG and the trainer's
// own metadata in one safetensors file, written atomically, so that a resumed run continues
// exactly where the interrupted one stopped.
import Foundation

public struct TrainingState: Equatable {
    /// Optimiser updates taken so far.
    public var step: Int
    public var rng: RandomGenerator
    /// Free-form strings the trainer wants back (configuration, dataset, …).
    public var metadata: [String: String]

    public init(step: Int, rng: RandomGenerator, metadata: [String: String] = [:]) {
        self.step = step
        self.rng = rng
        self.metadata = metadata
    }
}

public enum Checkpoint {
    static let stepKey = "tessera.step"
    static let rngKey = "tessera.rng"

    public static func save(to path: String, optimizer: AdamW, state: TrainingState) throws {
        try save(to: path, optimizers: [optimizer], state: state)
    }

    /// Saves several optimisers (each with its own parameter store; names must not collide) and
    /// `buffers`, state a model keeps outside its parameters (e.g. a VQ codebook's EMA sums).
    public static func save(to path: String, optimizers: [AdamW], buffers: [(name: String, tensor: Tensor)] = [],
                            state: TrainingState) throws {
        var writer = SafetensorsWriter(metadata: state.metadata)
        writer.metadata[stepKey] = String(state.step)
        writer.metadata[rngKey] = state.rng.state.map { String($0, radix: 16) }.joined(separator: " ")
        for (i, optimizer) in optimizers.enumerated() {
            writer.metadata[optimizerStepKey(i)] = String(optimizer.step)
            for entry in optimizer.parameters.entries { writer.add(entry.name, tensor: entry.tensor) }
            for (name, tensor) in optimizer.stateTensors { writer.add(name, tensor: tensor) }
        }
        for (name, tensor) in buffers { writer.add(name, tensor: tensor) }
        try writer.write(to: path)
    }

    static func optimizerStepKey(_ index: Int) -> String {
        index == 0 ? "tessera.optimizer.step" : "tessera.optimizer.\(index).step"
    }

    /// Restores parameters and optimiser state in place and returns the training state.
    /// Every tensor is checked before anything is overwritten, so a bad file changes nothing.
    public static func load(from path: String, into optimizer: AdamW) throws -> TrainingState {
        try load(from: path, into: [optimizer])
    }

    /// Restores what `save(to:optimizers:buffers:state:)` wrote, all or nothing.
    public static func load(from path: String, into optimizers: [AdamW],
                            buffers: [(name: String, tensor: Tensor)] = []) throws -> TrainingState {
        let file = try SafetensorsFile(path: path)
        let targets = optimizers.flatMap { optimizer in
            optimizer.parameters.entries.map { ($0.name, $0.tensor) } + optimizer.stateTensors
        } + buffers
        let values = try targets.map { name, tensor in try file.floats(name, shape: tensor.shape) }
        func number(_ key: String) throws -> Int {
            guard let text = file.metadata[key], let value = Int(text), value >= 0 else {
                throw TesseraError("checkpoint metadata \(key) is missing or not a count", path: path)
            }
            return value
        }
        let step = try number(stepKey)
        let optimizerSteps = try optimizers.indices.map { try number(optimizerStepKey($0)) }
        let words = (file.metadata[rngKey] ?? "").split(separator: " ").compactMap { UInt64($0, radix: 16) }
        guard let rng = RandomGenerator(state: words) else {
            throw TesseraError("checkpoint metadata \(rngKey) is not a generator state", path: path)
        }
        for ((_, tensor), v) in zip(targets, values) {
            v.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: tensor.count) }
        }
        for (optimizer, optimizerStep) in zip(optimizers, optimizerSteps) { optimizer.step = optimizerStep }
        var metadata = file.metadata
        metadata[stepKey] = nil
        metadata[rngKey] = nil
        for i in optimizers.indices { metadata[optimizerStepKey(i)] = nil }
        return TrainingState(step: step, rng: rng, metadata: metadata)
    }
}
