// What long-running commands share: a progress line (step, figures, pictures per second, time
// left), redrawn in place on a terminal and printed every few seconds otherwise, and Ctrl-C
// turned into a request that the training loop honours after its current step.
import Foundation
import Synchronization

struct ProgressLine {
    let total: Int
    let startStep: Int
    let start = Date()
    let onTerminal = isatty(2) == 1
    var images = 0
    var lastPrinted = Date.distantPast
    var drawn = false

    init(total: Int, startStep: Int) {
        self.total = total
        self.startStep = startStep
    }

    mutating func update(step: Int, images batch: Int, text: String) {
        images += batch
        let now = Date()
        guard now.timeIntervalSince(lastPrinted) >= (onTerminal ? 0.25 : 10) || step == total else { return }
        lastPrinted = now
        let elapsed = now.timeIntervalSince(start)
        let rate = Double(images) / max(elapsed, 1e-9)
        let stepsDone = max(1, step - startStep)
        let remaining = elapsed / Double(stepsDone) * Double(total - step)
        let width = 24, filled = width * step / max(1, total)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = "\(bar) \(step)/\(total) \(text) | \(String(format: "%.1f", rate)) img/s, ETA \(clock(remaining))"
        if onTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            drawn = true
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Ends an in-place line so that the next print starts on its own line.
    mutating func finishLine() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }
}

/// Prints a line to standard output at once, also when it is a file (print's buffer would
/// hold a training log's lines back until exit).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// h:mm:ss or m:ss.
func clock(_ seconds: Double) -> String {
    let s = Int(seconds.isFinite ? max(0, seconds) : 0)
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

enum Interrupt {
    private static let flag = Atomic<Bool>(false)

    /// From now on Ctrl-C (SIGINT) or SIGTERM sets the flag instead of killing the process.
    static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in Interrupt.flag.store(true, ordering: .relaxed) }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }

    static var requested: Bool { flag.load(ordering: .relaxed) }
}

/// The loop every `train` command runs: `step()` takes one update and returns its progress
/// text; `save()` runs every `checkpointEvery` steps, at the end and on Ctrl-C; `validate()`
/// runs every `validateEvery` steps and at the end. Returns false when interrupted (after
/// saving), true when the run reached `total`.
func trainingLoop(from first: Int, to total: Int, batchSize: Int, checkpointEvery: Int, validateEvery: Int,
                  step: () -> String, save: () throws -> Void, validate: (() -> String)?) throws -> Bool {
    Interrupt.install()
    var progress = ProgressLine(total: total, startStep: first)
    var done = first
    while done < total {
        let text = step()
        done += 1
        progress.update(step: done, images: batchSize, text: text)
        if done % checkpointEvery == 0 || done == total { try save() }
        if let validate, done % validateEvery == 0 || done == total {
            progress.finishLine()
            say("step \(done): " + validate())
        }
        if Interrupt.requested {
            try save()
            progress.finishLine()
            say("interrupted at step \(done): checkpoint saved; continue with --resume")
            return false
        }
    }
    progress.finishLine()
    return true
}
