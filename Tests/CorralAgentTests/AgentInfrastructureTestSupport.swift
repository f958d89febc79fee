import Foundation
import Glibc

/// A private directory under /tmp that a test removes when done.
struct ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/corral-agent-test-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw CreationFailed(errno: errno) }
        path = String(cString: created)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    struct CreationFailed: Error {
        let errno: Int32
    }
}

/// Runs blocking work on its own thread so it cannot starve the cooperative pool that the server's handler needs.
func offCooperativePool<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}
