import Glibc

/// Why the control socket could not be served or a control request failed;
/// descriptions are complete sentences for operators and the `corral` CLI.
public enum ControlSocketError: Error, Equatable, CustomStringConvertible {
    /// The path does not fit in `sockaddr_un`.
    case pathTooLong(path: String, limit: Int)
    /// The configured control group does not exist on this host.
    case unknownGroup(String)
    /// The group database could not be read.
    case groupLookupFailed(group: String, errno: Int32)
    /// A live server already answers on the path, so it must not be replaced.
    case alreadyInUse(path: String)
    /// Something other than a socket occupies the path; refusing to delete it.
    case notASocket(path: String)
    /// A system call failed; `operation` names the step (e.g. "bind", "chown").
    case system(operation: String, path: String, errno: Int32)
    /// The client could not reach the server.
    case connectFailed(path: String, errno: Int32)
    /// Requests are single lines, so an embedded newline would split one request into two.
    case requestContainsNewline
    /// No complete reply arrived in time.
    case timedOut(path: String, seconds: Double)
    /// The server hung up before sending a complete reply line.
    case connectionClosed(path: String)
    /// The reply line exceeded the client's cap.
    case responseTooLarge(path: String, limit: Int)

    public var description: String {
        switch self {
        case .pathTooLong(let path, let limit):
            "control socket path \(path) is \(path.utf8.count) bytes; Unix sockets allow at most \(limit)"
        case .unknownGroup(let group):
            "control group '\(group)' does not exist on this host"
        case .groupLookupFailed(let group, let code):
            "cannot look up control group '\(group)': \(POSIXSupport.describe(errno: code))"
        case .alreadyInUse(let path):
            "another process (probably corrald) is already listening on \(path)"
        case .notASocket(let path):
            "\(path) exists and is not a socket; refusing to replace it"
        case .system(let operation, let path, let code):
            "cannot \(operation) \(path): \(POSIXSupport.describe(errno: code))"
        case .connectFailed(let path, let code):
            "cannot connect to \(path): \(POSIXSupport.describe(errno: code))\(Self.connectHint(errno: code))"
        case .requestContainsNewline:
            "a control request must be a single line without newline characters"
        case .timedOut(let path, let seconds):
            "no reply from \(path) within \(seconds) seconds"
        case .connectionClosed(let path):
            "\(path) closed the connection before replying"
        case .responseTooLarge(let path, let limit):
            "reply from \(path) exceeds \(limit) bytes"
        }
    }

    private static func connectHint(errno code: Int32) -> String {
        switch code {
        case ENOENT, ECONNREFUSED: " (is corrald running?)"
        case EACCES, EPERM: " (run as root or as a member of corrald's control group)"
        default: ""
        }
    }
}
