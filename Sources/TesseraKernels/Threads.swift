// The one thread pool: the calling thread plus one worker per further core, kept warm between
// jobs. Kernels split rows or elements into contiguous chunks; nothing above them spawns threads.
// Decoding runs hundreds of small parallel regions per token. Dispatch's concurrentPerform woke a
// sleeping worker for each (tens of µs), so two threads decoded slower than one; here a worker
// spins briefly after each job before it sleeps, and the caller takes chunks itself, so a late
// or descheduled worker never holds a job up (the caller then simply does the work alone).
import Foundation
import Synchronization

public enum Threads {
    /// Threads for Tessera's own kernels, the caller's included (`TESSERA_THREADS` overrides);
    /// OpenBLAS itself runs single-threaded inside them.
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
        pool.run(tasks: tasks) { t in body(count * t / tasks..<count * (t + 1) / tasks) }
    }

    /// Runs `body(0)…body(n − 1)`, in parallel over the threads, for data-parallel work: each
    /// body holds a whole share of a batch, so the kernels inside run single-threaded instead
    /// of splitting each op again. Returns when all have finished.
    public static func replicas(_ n: Int, _ body: (Int) -> Void) {
        precondition(n >= 1 && !isInsideReplica, "Threads.replicas: \(n) replicas, or nested")
        if n == 1 { return body(0) }
        pool.run(tasks: n, body)
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

    /// Runs `body` with this thread marked as inside a parallel region.
    static func marked(_ body: () -> Void) {
        pthread_setspecific(replicaKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(replicaKey, nil) }
        body()
    }

    private static let pool = WorkerPool(workers: count - 1)
}

/// Runs jobs of a few tasks on the caller and `workers` long-lived threads. One job at a time:
/// a caller that finds the pool busy (tests run concurrently) runs its tasks itself.
///
/// A job is published as one atomic ticket, generation · 2⁴⁰ + tasks · 2²⁰ + next task, so a
/// worker that wakes late can only claim a task of the job it saw, never one of the next job.
private final class WorkerPool: @unchecked Sendable {
    private let workers: Int
    private let ticket = Atomic<Int>(0)
    private let generation = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    /// The running job's body; read by a thread only after it claimed a task of that job, and
    /// the caller waits for every claimed task before it returns (so the body outlives them).
    private var job: ((Int) -> Void)?
    private let sleep = NSCondition()
    private var sleepers = 0  // guarded by `sleep`

    /// How long a worker keeps polling for the next job before it sleeps. Decoding leaves a few
    /// µs between jobs; a training step's serial stretches are longer and the worker sleeps.
    private static let spinNanoseconds: UInt64 = 200_000

    init(workers: Int) {
        self.workers = max(0, workers)
        for _ in 0..<self.workers {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func run(tasks: Int, _ body: (Int) -> Void) {
        precondition(tasks > 0 && tasks < 1 << 20, "WorkerPool: \(tasks) tasks")
        guard workers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            Threads.marked { for t in 0..<tasks { body(t) } }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            job = body
            finished.store(0, ordering: .relaxed)
            let g = (generation.load(ordering: .relaxed) + 1) & 0xFF_FFFF
            ticket.store(g << 40 | tasks << 20, ordering: .releasing)
            generation.store(g, ordering: .releasing)
            sleep.lock()
            if sleepers > 0 { sleep.broadcast() }
            sleep.unlock()
            Threads.marked { claimTasks(generation: g) }
            while finished.load(ordering: .acquiring) < tasks {}
            job = nil
        }
    }

    /// Claims and runs tasks of job `g` until none is left.
    private func claimTasks(generation g: Int) {
        while true {
            let current = ticket.load(ordering: .acquiring)
            let index = current & 0xF_FFFF, tasks = (current >> 20) & 0xF_FFFF
            guard current >> 40 == g, index < tasks else { return }
            guard ticket.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing).exchanged else {
                continue
            }
            job!(index)
            finished.add(1, ordering: .releasing)
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            let start = DispatchTime.now().uptimeNanoseconds
            var polls = 0
            while generation.load(ordering: .acquiring) == seen {
                polls += 1
                if polls & 255 == 0 && DispatchTime.now().uptimeNanoseconds - start > Self.spinNanoseconds {
                    sleep.lock()
                    sleepers += 1
                    while generation.load(ordering: .acquiring) == seen { sleep.wait() }
                    sleepers -= 1
                    sleep.unlock()
                }
            }
            seen = generation.load(ordering: .acquiring)
            Threads.marked { claimTasks(generation: seen) }
        }
    }
}
