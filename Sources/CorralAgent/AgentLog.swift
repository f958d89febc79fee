import Foundation
import Synchronization

/// Timestamped lines to a log file (or standard error), one write per line.
public final class AgentLog: Sendable {
    private let handle: Mutex<FileHandle>

    public init(path: String?) {
        if let path, FileManager.default.createFile(atPath: path, contents: nil) || FileManager.default.fileExists(atPath: path),
           let file = FileHandle(forWritingAtPath: path) {
            file.seekToEndOfFile()
            handle = Mutex(file)
        } else {
            handle = Mutex(FileHandle.standardError)
        }
    }

    public func write(_ message: String) {
        let line = "\(Date().ISO8601Format()) \(message)\n"
        handle.withLock { $0.write(Data(line.utf8)) }
    }
}
