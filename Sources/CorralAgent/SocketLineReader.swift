import Glibc

/// Splits a socket's byte stream into newline-terminated lines, the framing of
/// the JSON-lines control protocol, with a size cap and a deadline per line so
/// neither a flood nor a silent peer can hold a thread or memory indefinitely.
struct SocketLineReader {
    enum Outcome: Equatable {
        /// One line, without its terminating newline.
        case line([UInt8])
        /// The peer closed the stream; any unterminated bytes are discarded.
        case endOfStream
        /// More than the cap arrived without a newline; the stream cannot be resynchronised.
        case tooLong
        case timedOut
        case failed(SystemCallFailure)
    }

    private static let newline = UInt8(ascii: "\n")
    private let socket: Int32
    private let maximumLineLength: Int
    private var buffered: [UInt8] = []
    /// Prefix of `buffered` already known to hold no newline, so each byte is scanned once.
    private var scannedCount = 0
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(socket: Int32, maximumLineLength: Int) {
        self.socket = socket
        self.maximumLineLength = maximumLineLength
    }

    /// Returns the next line, reading from the socket as needed until `deadline`.
    mutating func readLine(deadline: ContinuousClock.Instant) -> Outcome {
        while true {
            if let newlineIndex = buffered[scannedCount...].firstIndex(of: Self.newline) {
                guard newlineIndex <= maximumLineLength else { return .tooLong }
                let line = Array(buffered[..<newlineIndex])
                buffered.removeFirst(newlineIndex + 1)
                scannedCount = 0
                return .line(line)
            }
            scannedCount = buffered.count
            guard buffered.count <= maximumLineLength else { return .tooLong }
            if let interruption = waitForData(until: deadline) { return interruption }
            let count = chunk.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return .failed(.current())
            }
            if count == 0 { return .endOfStream }
            buffered += chunk[0..<count]
        }
    }

    /// Blocks until the socket is readable; returns an outcome only if the deadline passed or poll failed.
    private func waitForData(until deadline: ContinuousClock.Instant) -> Outcome? {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return .timedOut }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(clamping: min(seconds, 2_000_000) * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return nil }
            if ready < 0 && errno != EINTR { return .failed(.current()) }
        }
    }
}
