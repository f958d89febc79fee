import Glibc

/// The `corral` CLI's side of the control socket: one blocking request/reply exchange.
/// Blocking by design, for a command-line process; do not call it from the cooperative pool of a process that also serves the socket.
public enum ControlSocketClient {
    /// Cap on a reply line, generous for large status dumps yet bounded against a misbehaving server.
    public static let maximumResponseLength = 64 * 1024 * 1024

    /// Sends `line` (a single request without its newline) to the server at `path` and returns its
    /// one-line reply without the newline, failing if the whole exchange exceeds `timeoutSeconds`.
    public static func request(path: String, line: [UInt8], timeoutSeconds: Double) throws(ControlSocketError) -> [UInt8] {
        precondition(timeoutSeconds > 0, "control request timeout must be positive, got \(timeoutSeconds)")
        let newline = UInt8(ascii: "\n")
        guard !line.contains(newline) else { throw .requestContainsNewline }
        let address = try UnixSocketAddress(path: path)
        let deadline = ContinuousClock.now + .seconds(timeoutSeconds)
        let connection = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard connection >= 0 else { throw .system(operation: "create socket for", path: path, errno: errno) }
        defer { close(connection) }
        do {
            try POSIXSupport.setTimeout(SO_SNDTIMEO, seconds: timeoutSeconds, on: connection)
        } catch {
            throw .system(operation: "set send timeout on socket for", path: path, errno: error.code)
        }
        if let failure = address.connect(connection) {
            if failure.code == EAGAIN { throw .timedOut(path: path, seconds: timeoutSeconds) }
            throw .connectFailed(path: path, errno: failure.code)
        }
        do {
            try POSIXSupport.sendAll(line + [newline], to: connection)
        } catch {
            switch error.code {
            // The server may refuse and hang up before reading; its refusal line is still waiting to be read.
            case EPIPE, ECONNRESET: break
            case EAGAIN: throw .timedOut(path: path, seconds: timeoutSeconds)
            default: throw .system(operation: "send request to", path: path, errno: error.code)
            }
        }
        var reader = SocketLineReader(socket: connection, maximumLineLength: maximumResponseLength)
        switch reader.readLine(deadline: deadline) {
        case .line(let response): return response
        case .endOfStream: throw .connectionClosed(path: path)
        case .tooLong: throw .responseTooLarge(path: path, limit: maximumResponseLength)
        case .timedOut: throw .timedOut(path: path, seconds: timeoutSeconds)
        case .failed(let failure): throw .system(operation: "read reply from", path: path, errno: failure.code)
        }
    }
}
