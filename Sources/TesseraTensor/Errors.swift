// The error every IO and CLI boundary throws: one line that names the file (when there is
// one) and what is wrong with it.
import Foundation

public struct TesseraError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public let path: String?
    public let problem: String

    public init(_ problem: String, path: String? = nil) {
        self.path = path
        self.problem = problem
    }

    public var description: String { path.map { "\($0): \(problem)" } ?? problem }
    public var errorDescription: String? { description }
}

/// Writing files so that a kill never leaves half of one: write a temporary sibling, flush
/// it, then rename it over the destination (rename is atomic within a file system).
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try data.write(to: temporary)
            let handle = try FileHandle(forWritingTo: temporary)
            try handle.synchronize()
            try handle.close()
            if rename(temporary.path, url.path) != 0 {
                throw TesseraError("cannot rename into place: \(String(cString: strerror(errno)))", path: path)
            }
        } catch let error as TesseraError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw TesseraError("cannot write: \(error.localizedDescription)", path: path)
        }
    }
}
