import Foundation
import Glibc
import Synchronization

/// Timestamped lines to a log file (or standard error), one write per line.
///
/// Logging never stops the agent: a line that cannot be written (a full disk, a closed or
/// broken descriptor, a pipe whose reader stalls) is dropped and counted, never retried and
/// never waited for; the first line that can be written again is preceded by one saying how
/// many were lost and why. A pipe or socket is written only when it can take the line at once,
/// so a stalled reader cannot block the agent's loop.
public final class AgentLog: Sendable {
    typealias WriteCall = @Sendable (_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int

    private struct Output {
        let fd: Int32
        /// Regular files never block; anything else is polled first.
        let mayBlock: Bool
        var dropped = 0
        var dropReason: Int32 = 0
    }

    private let output: Mutex<Output>
    private let writeCall: WriteCall

    public init(path: String?) {
        // Appends: truncating would lose the previous run's story.
        var fd: Int32 = -1
        if let path { fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640) }
        if fd < 0 { fd = STDERR_FILENO }
        output = Mutex(Output(fd: fd, mayBlock: !Self.isRegularFile(fd)))
        writeCall = { fd, bytes, count in Glibc.write(fd, bytes, count) }
    }

    /// For tests: every write goes through `write`.
    init(fileDescriptor: Int32, mayBlock: Bool = false, write: @escaping WriteCall) {
        output = Mutex(Output(fd: fileDescriptor, mayBlock: mayBlock))
        writeCall = write
    }

    /// UTC with milliseconds: failover timings are read from these lines.
    static let timestamp = Date.ISO8601FormatStyle().year().month().day().dateSeparator(.dash)
        .dateTimeSeparator(.standard).time(includingFractionalSeconds: true)

    /// Lines dropped since the last line that was written.
    public var droppedLines: Int { output.withLock { $0.dropped } }

    public func write(_ message: String) {
        let stamp = "\(Date().ISO8601Format(Self.timestamp))Z "
        output.withLock { output in
            if output.dropped > 0 {
                let before = output.dropped
                let note = "\(stamp)log: \(output.dropped) line\(output.dropped == 1 ? "" : "s") dropped while the log could not be written (\(POSIXSupport.describe(errno: output.dropReason)))\n"
                guard emit(note, &output) else {
                    // Still failing: the message is lost too (the note is not a line of its own).
                    output.dropped = before + 1
                    return
                }
                output.dropped = 0
            }
            _ = emit(stamp + message + "\n", &output)
        }
    }

    /// Writes `line` whole, or counts it dropped; true when written.
    private func emit(_ line: String, _ output: inout Output) -> Bool {
        if output.mayBlock {
            var ready = pollfd(fd: output.fd, events: Int16(POLLOUT), revents: 0)
            let polled = poll(&ready, 1, 0)
            if polled <= 0 || Int32(ready.revents) & (POLLERR | POLLHUP | POLLNVAL) != 0 || Int32(ready.revents) & POLLOUT == 0 {
                return drop(polled < 0 ? errno : (Int32(ready.revents) & POLLNVAL != 0 ? EBADF : EAGAIN), &output)
            }
        }
        var bytes = Array(line.utf8)
        var offset = 0
        var failure: Int32 = 0
        bytes.withUnsafeMutableBytes { buffer in
            while offset < buffer.count {
                let written = writeCall(output.fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if written == 0 {
                    failure = EIO
                    return
                }
                offset += written
            }
        }
        bytes = []
        // A part of a line already out cannot be taken back; the rest is dropped with it.
        return failure == 0 ? true : drop(failure, &output)
    }

    private func drop(_ reason: Int32, _ output: inout Output) -> Bool {
        output.dropped += 1
        output.dropReason = reason
        return false
    }

    private static func isRegularFile(_ fd: Int32) -> Bool {
        var status = stat()
        return fstat(fd, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
    }
}
