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

    /// Tessera's own choice of OpenBLAS core, always obeyed: `TESSERA_BLAS_CORE=Haswell`
    /// measures the AVX2 kernels on any CPU.
    public static let choiceVariable = "TESSERA_BLAS_CORE"

    /// Set on a relaunch that replaced an inherited OPENBLAS_CORETYPE; holds the old value.
    public static let replacedVariable = "TESSERA_BLAS_REPLACED_CORETYPE"

    /// The OPENBLAS_CORETYPE a relaunch should run under, or nil to keep the loaded kernels.
    /// `TESSERA_BLAS_CORE` wins whenever it differs from the loaded core. Otherwise, on a CPU
    /// with AVX-512 whose loaded core has none, the AVX-512 kernels: whether OpenBLAS did not
    /// recognise the CPU or an inherited OPENBLAS_CORETYPE held it back. This workplace exports
    /// OPENBLAS_CORETYPE=Haswell to every process, a setting for other programs that would
    /// halve Tessera's products; `tessera bench` says when it was replaced.
    public static func relaunchCore(environment: [String: String], loadedCore: String, cpuHasAVX512: Bool) -> String? {
        if environment[relaunchMarker] != nil { return nil }
        if let chosen = environment[choiceVariable], !chosen.isEmpty {
            return chosen.lowercased() == loadedCore.lowercased() ? nil : chosen
        }
        return !avx512Cores.contains(loadedCore.lowercased()) && cpuHasAVX512 ? fastCoreType : nil
    }

    /// Replaces this process with itself, same arguments, with OPENBLAS_CORETYPE set, when
    /// `relaunchCore` says so. Returns only if no relaunch was needed or exec failed (then the
    /// process simply runs on the kernels already loaded). Call it first in `main`.
    public static func relaunchWithFastCoreIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard let core = relaunchCore(environment: environment, loadedCore: coreName, cpuHasAVX512: cpuHasAVX512) else {
            return
        }
        let inherited = environment["OPENBLAS_CORETYPE"]
        if let inherited, environment[choiceVariable] == nil { setenv(replacedVariable, inherited, 1) }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(relaunchMarker, "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc?): carry on with the kernels already loaded.
        if let inherited { setenv("OPENBLAS_CORETYPE", inherited, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
        unsetenv(replacedVariable)
        unsetenv(relaunchMarker)
    }

    /// A sentence for `tessera bench` when a relaunch replaced an inherited OPENBLAS_CORETYPE.
    public static var replacementNote: String? {
        guard let old = ProcessInfo.processInfo.environment[replacedVariable] else { return nil }
        return "OPENBLAS_CORETYPE=\(old) from the environment replaced by \(coreName) (this CPU has AVX-512); "
            + "set \(choiceVariable)=\(old) to keep it"
    }
}
