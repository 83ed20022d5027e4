// Entry point: first make sure OpenBLAS runs its fastest kernels (which may re-execute the
// process once, before anything else happens), keep freed buffers for reuse, then hand over
// to the command parser. Errors leave as one line on stderr ("Error: …") and a non-zero exit;
// help and version requests print in full.
import ArgumentParser
import Foundation
import TesseraKernels

BLASRuntime.relaunchWithFastCoreIfNeeded()
BLASRuntime.leaveThreadingToTessera()
MemoryRuntime.keepFreedMemory()
do {
    var command = try Tessera.parseAsRoot()
    try command.run()
} catch {
    let code = Tessera.exitCode(for: error)
    if code == .success {
        print(Tessera.fullMessage(for: error))
    } else {
        let message = Tessera.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
    }
    exit(code.rawValue)
}
