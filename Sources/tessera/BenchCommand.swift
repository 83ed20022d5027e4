// `tessera bench [--case NAME ...] [--json]`: measures the cases of shared/BENCH.md on this
// machine. With --json, stdout carries one JSON object per measurement and nothing else.
import ArgumentParser
import Foundation
import TesseraKernels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Tessera's kernels and models (shared/BENCH.md's cases).",
        discussion: "Cases: \(BenchCase.allCases.map(\.rawValue).joined(separator: ", ")). Each figure is the median of at least five timed runs after a warm-up; compare ratios measured in one sitting.")

    @Option(name: [.customLong("case")], help: "A case to run (repeatable); all cases when omitted.")
    var cases: [String] = []

    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    func validate() throws {
        let known = Set(BenchCase.allCases.map(\.rawValue))
        if let unknown = cases.first(where: { !known.contains($0) }) {
            throw ValidationError("unknown case '\(unknown)'; known cases: \(BenchCase.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let selected = cases.isEmpty ? BenchCase.allCases : BenchCase.allCases.filter { cases.contains($0.rawValue) }
        if !json {
            print("OpenBLAS core \(BLASRuntime.coreName), \(Threads.count) threads (large products split over them, OpenBLAS \(BLASRuntime.threadCount)-threaded inside)")
        }
        if let note = BLASRuntime.replacementNote {
            FileHandle.standardError.write(Data((note + "\n").utf8))
        }
        for benchCase in selected {
            benchCase.run { measurement in
                print(json ? measurement.jsonLine : measurement.tableLine)
                FileHandle.standardOutput.synchronizeFile()
            }
        }
    }
}
