// The one thread pool: Dispatch's, at most one worker per core. Kernels split rows or
// elements into contiguous chunks; nothing above the kernels spawns threads.
import Dispatch
import Foundation

public enum Threads {
    /// Workers for Tessera's own kernels (`TESSERA_THREADS` overrides); OpenBLAS itself runs
    /// single-threaded inside them.
    public static let count: Int = {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if let text = ProcessInfo.processInfo.environment["TESSERA_THREADS"], let n = Int(text), n > 0 {
            return n
        }
        return max(1, cores)
    }()

    /// Runs `body` over contiguous chunks of `0..<count`, in parallel when there is enough
    /// work: each chunk holds at least `minimumChunk` items. Chunks never overlap, so a body
    /// that writes only inside its own range needs no locks. OpenBLAS is single-threaded
    /// throughout (`gemm`), so bodies may call it without oversubscribing the cores.
    public static func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let tasks = isInsideReplica ? 1 : min(Threads.count, count / max(1, minimumChunk))
        if tasks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        run(count, tasks: tasks, body)
    }

    /// A thread-specific mark set on each thread while it runs a replica or a chunk of a
    /// `parallelFor`: every kernel called there stays on that thread (so a product inside a
    /// per-image convolution chunk is not split again). Per thread, so concurrent callers
    /// (tests run in parallel) do not see each other's work.
    private static let replicaKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "Threads: no thread-specific key left")
        return key
    }()

    private static var isInsideReplica: Bool { pthread_getspecific(replicaKey) != nil }

    /// Runs `body(0)…body(n − 1)` at once, one per worker, for data-parallel work: each body
    /// holds a whole share of a batch, so the kernels inside run single-threaded
    /// instead of splitting each op again. Returns when all have finished.
    public static func replicas(_ n: Int, _ body: (Int) -> Void) {
        precondition(n >= 1 && !isInsideReplica, "Threads.replicas: \(n) replicas, or nested")
        if n == 1 { return body(0) }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: n) { i in
                pthread_setspecific(replicaKey, UnsafeRawPointer(bitPattern: 1))
                defer { pthread_setspecific(replicaKey, nil) }
                shared.value(i)
            }
        }
    }

    private static func run(_ count: Int, tasks: Int, _ body: (Range<Int>) -> Void) {
        withoutActuallyEscaping(body) { body in
            // The chunks are disjoint and the call returns only when all have run, which is
            // the guarantee Sendable would otherwise have to give.
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: tasks) { t in
                pthread_setspecific(replicaKey, UnsafeRawPointer(bitPattern: 1))
                defer { pthread_setspecific(replicaKey, nil) }
                shared.value(count * t / tasks..<count * (t + 1) / tasks)
            }
        }
    }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
