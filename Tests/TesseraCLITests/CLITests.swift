// The built `tessera` executable, driven as a user (and the outside checks) would: help,
// errors, and the bench's JSON-lines contract from shared/BENCH.md.
import Foundation
import Testing

/// The `tessera` binary next to this test bundle in the build folder.
let tesseraURL: URL = {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("tessera")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tessera")
}()

struct RunResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

func runTessera(_ arguments: [String], environment: [String: String?] = [:], directory: String? = nil) throws -> RunResult {
    let process = Process()
    process.executableURL = tesseraURL
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                     stderr: String(decoding: stderr, as: UTF8.self))
}

func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any], "not an object: \(line)")
    }
}

@Suite(.serialized) struct CommandLine_ {
    @Test func helpListsTheBench() throws {
        let result = try runTessera(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("bench"))
    }

    @Test func unknownCaseIsAOneLineError() throws {
        let result = try runTessera(["bench", "--case", "warp-drive"])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let message = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(message.contains("unknown case 'warp-drive'") && message.contains("sgemm"), "\(result.stderr)")
    }

    @Test func kernelsCasePrintsJSONLinesOnly() throws {
        let result = try runTessera(["bench", "--case", "kernels", "--json"])
        #expect(result.status == 0)
        let lines = try jsonLines(result.stdout)
        let variants = lines.compactMap { $0["variant"] as? String }
        #expect(variants == ["layernorm-fwd", "layernorm-bwd", "gelu-fwd", "gelu-bwd", "softmax-fwd", "softmax-bwd"])
        for line in lines {
            #expect(line["case"] as? String == "kernels")
            #expect((line["ms"] as? Double ?? 0) > 0 && (line["gbps"] as? Double ?? 0) > 0)
        }
    }

    @Test func sgemmReportsTheCoreAndGflops() throws {
        let result = try runTessera(["bench", "--case", "sgemm", "--json"])
        #expect(result.status == 0)
        let lines = try jsonLines(result.stdout)
        #expect(lines.compactMap { $0["variant"] as? String } == ["256", "1024", "2048"])
        for line in lines {
            #expect(line["case"] as? String == "sgemm")
            #expect((line["gflops"] as? Double ?? 0) > 1)
            #expect(!(line["core"] as? String ?? "").isEmpty)
        }
    }

    @Test func attentionCaseReportsItsVariants() throws {
        let result = try runTessera(["bench", "--case", "attention", "--json"])
        #expect(result.status == 0)
        let lines = try jsonLines(result.stdout)
        #expect(lines.compactMap { $0["variant"] as? String } == [
            "fwd-causal-288", "fwdbwd-causal-288", "fwd-full-256", "fwdbwd-full-256", "decode-b1", "decode-b8"])
        for line in lines.prefix(4) { #expect((line["gflops"] as? Double ?? 0) > 0) }
        for line in lines.suffix(2) { #expect((line["us_per_query"] as? Double ?? 0) > 0) }
    }

    @Test func fastCoreIsChosenWithoutTheUserAndTheirChoiceIsKept() throws {
        let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let hasAVX512 = cpuInfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").contains("avx512f") ?? false
        // No variable: on an AVX-512 CPU the tool ends up on AVX-512 kernels by itself.
        let automatic = try jsonLines(runTessera(["bench", "--case", "sgemm", "--json"],
                                                 environment: ["OPENBLAS_CORETYPE": nil, "TESSERA_BLAS_CORE": nil]).stdout)
        let core = (automatic.first?["core"] as? String ?? "").lowercased()
        if hasAVX512 {
            #expect(["skylakex", "cooperlake", "sapphirerapids"].contains(core), "core \(core)")
        }
        // An inherited OPENBLAS_CORETYPE naming a slower core is replaced, and bench says so.
        let inherited = try runTessera(["bench", "--case", "sgemm", "--json"], environment: ["OPENBLAS_CORETYPE": "Haswell", "TESSERA_BLAS_CORE": nil])
        let inheritedCore = (try jsonLines(inherited.stdout).first?["core"] as? String ?? "").lowercased()
        if hasAVX512 {
            #expect(["skylakex", "cooperlake", "sapphirerapids"].contains(inheritedCore), "core \(inheritedCore)")
            #expect(inherited.stderr.contains("OPENBLAS_CORETYPE=Haswell from the environment replaced"))
        } else {
            #expect(inheritedCore == "haswell")
        }
        // Tessera's own variable is always obeyed.
        let chosen = try jsonLines(runTessera(["bench", "--case", "sgemm", "--json"],
                                              environment: ["OPENBLAS_CORETYPE": nil, "TESSERA_BLAS_CORE": "Haswell"]).stdout)
        #expect(chosen.first?["core"] as? String == "Haswell")
    }
}
