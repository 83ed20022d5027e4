// Data-parallel training on one machine: a batch is split into one contiguous share per
// worker; each worker runs forward and backward on its share with its own tape and its own
// copy of the gradients (a replica store, `ParameterStore(mirroring:)`), single-threaded
// inside; the replicas' gradients are then summed into the model's own. On two cores this is
// far faster than splitting every op of one batch between two threads: the ops are too small
// for two threads to pay (measured with `tessera bench --case gpt-train`).
import TesseraKernels

public enum DataParallel {
    /// The share of `0..<batch` worker `worker` of `workers` takes (contiguous, sizes within 1).
    public static func share(_ worker: Int, of workers: Int, batch: Int) -> Range<Int> {
        batch * worker / workers..<batch * (worker + 1) / workers
    }

    /// Zeroes every store's gradients, runs `loss(worker, share, tape)` for each worker's share
    /// of `batch` at once, back-propagates each share's loss (a mean over the share) weighted by
    /// the share's part of the batch, and adds the replicas' gradients into `stores[0]`, which
    /// then holds the gradient of the mean over the whole batch. Worker w's model must declare
    /// its parameters in `stores[w]`.
    public static func backward(_ stores: [ParameterStore], batch: Int,
                                loss: (_ worker: Int, _ share: Range<Int>, _ tape: Tape) -> Tensor) {
        precondition(!stores.isEmpty && batch >= stores.count, "DataParallel: \(stores.count) workers for a batch of \(batch)")
        stores.forEach { $0.zeroGrads() }
        Threads.replicas(stores.count) { w in
            let share = share(w, of: stores.count, batch: batch)
            let tape = Tape()
            tape.backward(loss(w, share, tape), seed: [Float(share.count) / Float(batch)])
        }
        stores[0].accumulateGradients(from: Array(stores.dropFirst()))
    }

    /// For a loss that couples the whole batch (a contrastive loss compares every item with
    /// every other): each worker computes `outputs` for its share on its own tape; `loss` then
    /// sees every worker's outputs, in share order, as leaves of one small tape and returns a
    /// one-element loss; its gradient with respect to each worker's outputs is sent back down
    /// that worker's tape, and the replicas' gradients are added into `stores[0]`. Returns the loss.
    public static func backward(_ stores: [ParameterStore], batch: Int,
                                outputs: (_ worker: Int, _ share: Range<Int>, _ tape: Tape) -> Tensor,
                                loss: (_ tape: Tape, _ outputs: [Tensor]) -> Tensor) -> Float {
        precondition(!stores.isEmpty && batch >= stores.count, "DataParallel: \(stores.count) workers for a batch of \(batch)")
        stores.forEach { $0.zeroGrads() }
        let tapes = stores.map { _ in Tape() }
        var produced = [Tensor?](repeating: nil, count: stores.count)
        produced.withUnsafeMutableBufferPointer { produced in
            Threads.replicas(stores.count) { w in produced[w] = outputs(w, share(w, of: stores.count, batch: batch), tapes[w]) }
        }
        let results = produced.map { $0! }
        let leaves = results.map { Tensor(shape: $0.shape, sharingValuesOf: $0, requiresGrad: true) }
        let lossTape = Tape()
        let value = loss(lossTape, leaves)
        lossTape.backward(value)
        Threads.replicas(stores.count) { w in
            tapes[w].backward(results[w], seed: leaves[w].gradValues)
        }
        stores[0].accumulateGradients(from: Array(stores.dropFirst()))
        return value.item
    }

    /// The mean of `value` over `count` items taken in batches of `batchSize`, each worker
    /// taking every `workers`-th batch at once: `value(worker, items)` returns the batch's mean,
    /// weighted here by the batch's size. For validation losses, which need no gradients.
    public static func mean(count: Int, batchSize: Int, workers: Int,
                            _ value: (_ worker: Int, _ items: Range<Int>) -> Double) -> Double {
        var totals = [Double](repeating: 0, count: workers)
        totals.withUnsafeMutableBufferPointer { totals in
            Threads.replicas(workers) { w in
                for first in stride(from: w * batchSize, to: count, by: batchSize * workers) {
                    let items = first..<min(count, first + batchSize)
                    totals[w] += value(w, items) * Double(items.count)
                }
            }
        }
        return totals.reduce(0, +) / Double(max(1, count))
    }
}
