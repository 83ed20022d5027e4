// Timing for `tessera bench`: a warm-up call, then repetitions until there are at least five
// and a quarter of a second has passed; the median is the figure (BENCH.md's contract).
import Foundation

struct Measurement {
    let caseName: String
    let variant: String
    /// Median milliseconds per call.
    let milliseconds: Double
    /// The case's own figures, in the order they are printed.
    let figures: [(String, JSONValue)]
}

enum JSONValue {
    case number(Double)
    case text(String)
    case integers([Int])

    var json: String {
        switch self {
        case .number(let value):
            guard value.isFinite else { return "null" }
            return String(format: "%.6g", value)
        case .text(let text):
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        case .integers(let values):
            return "[" + values.map(String.init).joined(separator: ",") + "]"
        }
    }
}

extension Measurement {
    /// One JSON object on one line: case, variant, ms, then the figures.
    var jsonLine: String {
        let fields = [("case", JSONValue.text(caseName)), ("variant", .text(variant)), ("ms", .number(milliseconds))] + figures
        return "{" + fields.map { "\"\($0.0)\": \($0.1.json)" }.joined(separator: ", ") + "}"
    }

    var tableLine: String {
        let shown = figures.map { name, value -> String in
            switch value {
            case .number(let v): return "\(name) \(String(format: "%.1f", v))"
            case .text(let t): return "\(name) \(t)"
            case .integers(let v): return "\(name) \(v.map(String.init).joined(separator: "×"))"
            }
        }
        let name = "\(caseName) \(variant)".padding(toLength: 28, withPad: " ", startingAt: 0)
        return "\(name) \(String(format: "%9.3f", milliseconds)) ms   " + shown.joined(separator: "   ")
    }
}

/// Median milliseconds of `body` over at least `minimumRepetitions` timed calls after one
/// warm-up, repeating until `minimumSeconds` have passed (at most `maximumRepetitions`).
func medianMilliseconds(
    minimumRepetitions: Int = 5, minimumSeconds: Double = 0.25, maximumRepetitions: Int = 200,
    _ body: () -> Void
) -> Double {
    body()
    var times: [Double] = []
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < minimumRepetitions
        || (Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < minimumSeconds && times.count < maximumRepetitions) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-6)
    }
    times.sort()
    return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
}
