import Foundation
import Glibc

/// Tells systemd how corrald is doing, over the sd_notify protocol: one datagram per message to
/// the AF_UNIX socket named by `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket),
/// `KEY=VALUE` lines. With `Type=notify`, systemd considers corrald started at `READY=1`;
/// `STATUS=` is the line `systemctl status corrald` shows; `WATCHDOG=1` feeds systemd's own
/// watchdog (`WatchdogSec=`, which sets `WATCHDOG_USEC`).
///
/// Not under systemd (no `NOTIFY_SOCKET`), every call does nothing and returns nil. Calls never
/// block (MSG_DONTWAIT) and are safe from any thread. A failure is returned, never thrown:
/// losing a status line must not stop the agent.
public struct SystemdNotifier: Sendable {
    /// The socket messages go to, as `NOTIFY_SOCKET` gave it; nil when not run by systemd.
    public let socketPath: String?
    /// How often systemd expects `WATCHDOG=1` at the latest (`WATCHDOG_USEC`); nil when
    /// systemd's watchdog is off for this process. Send at about half this interval.
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment` (the
    /// process's by default; tests inject their own). `WATCHDOG_PID`, when set, must be `pid`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketPath = path
        if path != nil, let text = environment["WATCHDOG_USEC"], let usec = Int64(text), usec > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == pid }) ?? true {
            watchdogInterval = .microseconds(usec)
        } else {
            watchdogInterval = nil
        }
    }

    /// Startup is finished: corrald has joined the group and synced its state.
    @discardableResult
    public func ready(status: String) -> NotifyFailure? {
        send(["READY=1", "STATUS=" + Self.oneLine(status)])
    }

    /// The line `systemctl status` shows, e.g. `member of 3, quorate, 12 VMs here`.
    @discardableResult
    public func status(_ text: String) -> NotifyFailure? {
        send(["STATUS=" + Self.oneLine(text)])
    }

    /// Keep-alive for systemd's watchdog; does nothing unless `watchdogInterval` is set.
    @discardableResult
    public func watchdog() -> NotifyFailure? {
        watchdogInterval == nil ? nil : send(["WATCHDOG=1"])
    }

    /// corrald is shutting down (SIGTERM received); `status` says what it leaves behind.
    @discardableResult
    public func stopping(status: String) -> NotifyFailure? {
        send(["STOPPING=1", "STATUS=" + Self.oneLine(status)])
    }

    /// Sends `lines` joined by newlines as one datagram.
    @discardableResult
    public func send(_ lines: [String]) -> NotifyFailure? {
        guard let path = socketPath else { return nil }
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        guard abstract || bytes.first == UInt8(ascii: "/") else {
            return NotifyFailure(socket: path, problem: "NOTIFY_SOCKET is neither an absolute path nor an @abstract name")
        }
        if abstract { bytes[0] = 0 }
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return NotifyFailure(socket: path, problem: "the socket name is longer than \(capacity - 1) bytes") }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        // An abstract name is exactly its bytes (no NUL terminator); a path is NUL-terminated.
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return NotifyFailure(socket: path, problem: "socket: " + POSIXSupport.describe(errno: errno)) }
        defer { close(fd) }
        let message = Array(lines.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { buffer in
                    var result: Int
                    repeat {
                        result = sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), socketAddress, length)
                    } while result < 0 && errno == EINTR
                    return result < 0 ? -Int(errno) : result
                }
            }
        }
        if sent < 0 { return NotifyFailure(socket: path, problem: POSIXSupport.describe(errno: Int32(-sent))) }
        if sent != message.count { return NotifyFailure(socket: path, problem: "sent \(sent) of \(message.count) bytes") }
        return nil
    }

    /// Why a message did not reach systemd.
    public struct NotifyFailure: Error, Equatable, CustomStringConvertible {
        public var socket: String
        public var problem: String
        public var description: String { "cannot notify systemd at \(socket): \(problem)" }
    }

    /// STATUS= is one line: newlines would start new (bogus) assignments.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
