import Foundation
import Synchronization

/// Timestamped lines to a log file (or standard error), one write per line.
public final class AgentLog: Sendable {
    private let handle: Mutex<FileHandle>

    public init(path: String?) {
        // Appends: createFile would truncate an existing log (and with it the previous run's story).
        if let path, FileManager.default.fileExists(atPath: path) || FileManager.default.createFile(atPath: path, contents: nil),
           let file = FileHandle(forWritingAtPath: path) {
            file.seekToEndOfFile()
            handle = Mutex(file)
        } else {
            handle = Mutex(FileHandle.standardError)
        }
    }

    /// UTC with milliseconds: failover timings are read from these lines.
    static let timestamp = Date.ISO8601FormatStyle().year().month().day().dateSeparator(.dash)
        .dateTimeSeparator(.standard).time(includingFractionalSeconds: true)

    public func write(_ message: String) {
        let line = "\(Date().ISO8601Format(Self.timestamp))Z \(message)\n"
        handle.withLock { $0.write(Data(line.utf8)) }
    }
}
