// Getting OpenBLAS's fastest kernels without the user knowing about them. Debian's OpenBLAS
// 0.3.21 reads OPENBLAS_CORETYPE once, when the library loads, and on CPUs it does not
// recognise it falls back to its AVX2 ("Haswell") kernels even where AVX-512 is available;
// its AVX-512 ("SkylakeX") sgemm is about 1.6–1.9× faster. The only moment to choose is before
// the library loads, so the tool re-executes itself once with the variable set.
import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum BLASRuntime {
    /// The core whose kernels OpenBLAS is running, e.g. "Haswell" or "SkylakeX".
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build configuration line.
    public static var configuration: String { String(cString: openblas_get_config()) }

    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// OpenBLAS single-threaded for good: large products are split over Tessera's own threads
    /// (`gemm`), which sleep when idle. OpenBLAS's threads spin while they wait and split each
    /// product statically, so with another process on the cores one descheduled thread stalls
    /// every product: a diffusion picture took 30 s with two OpenBLAS threads beside two
    /// trainings, 1.9 s with one.
    public static func leaveThreadingToTessera() { openblas_set_num_threads(1) }

    /// OpenBLAS cores with AVX-512 sgemm kernels (0.3.21 names).
    static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// The variable's value that selects the AVX-512 kernels.
    public static let fastCoreType = "SkylakeX"

    static let relaunchMarker = "TESSERA_BLAS_RELAUNCHED"

    /// True when the CPU reports the AVX-512 foundation instructions (Linux /proc/cpuinfo).
    public static var cpuHasAVX512: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            return false
        }
        for line in info.split(separator: "\n") where line.hasPrefix("flags") {
            return line.split(separator: " ").contains("avx512f")
        }
        return false
    }

    /// Whether a relaunch would switch OpenBLAS to faster kernels: the CPU has AVX-512, the
    /// loaded core has none, the user did not choose a core, and this is not already a relaunch.
    public static func shouldRelaunchWithFastCore(environment: [String: String]) -> Bool {
        if environment["OPENBLAS_CORETYPE"] != nil || environment[relaunchMarker] != nil {
            return false
        }
        return !avx512Cores.contains(coreName.lowercased()) && cpuHasAVX512
    }

    /// Replaces this process with itself, same arguments, with OPENBLAS_CORETYPE set, when
    /// `shouldRelaunchWithFastCore` says so. Returns only if no relaunch was needed or exec
    /// failed (then the process simply runs on the slower kernels). Call it first in `main`.
    public static func relaunchWithFastCoreIfNeeded() {
        guard shouldRelaunchWithFastCore(environment: ProcessInfo.processInfo.environment) else {
            return
        }
        setenv("OPENBLAS_CORETYPE", fastCoreType, 1)
        setenv(relaunchMarker, "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc?): carry on with the kernels already loaded.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
