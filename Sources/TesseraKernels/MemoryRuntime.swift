// Training allocates and frees the same large activation and gradient buffers every step.
// glibc returns buffers above its mmap threshold (and the heap's free top) to the kernel at
// once, so each step pays page faults and zeroing to get them back: about a tenth of a
// vq-train step. Raising both thresholds keeps freed memory in the process for reuse.
import Glibc

public enum MemoryRuntime {
    /// glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD = −1, M_MMAP_THRESHOLD = −3,
    /// M_ARENA_MAX = −8.
    private static let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3, arenaMax: Int32 = -8

    /// Asks glibc to keep freed memory: buffers up to 32 MB (its largest allowed mmap
    /// threshold) come from the heap, and the heap is not trimmed below 1 GB. One arena for all
    /// threads, so the data-parallel workers' buffers come back from the same kept heap (a
    /// `gpt-train` bench run took 387k page faults with an arena per thread, 273k with one). Mallopt is looked
    /// up at run time, since Swift's Glibc module does not export it; elsewhere this does nothing.
    public static func keepFreedMemory() {
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        _ = mallopt(mmapThreshold, 32 << 20)
        _ = mallopt(trimThreshold, 1 << 30)
        _ = mallopt(arenaMax, 1)
    }
}
