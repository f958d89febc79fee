@testable import CorralAgent
import Foundation
import Glibc
import Testing

/// The sd_notify protocol spoken to a real AF_UNIX datagram socket standing in for systemd:
/// a filesystem path and an abstract `@name`, the exact datagrams, the watchdog settings, and
/// silence outside systemd.
@Suite struct SystemdNotifierTests {
    /// A bound datagram socket that receives what the notifier sends; fails the test after 2 s.
    final class FakeSystemd {
        let fd: Int32
        let name: String

        /// `name`: a path, or `@something` for an abstract socket.
        init(_ name: String) throws {
            self.name = name
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(step: "socket", errno: errno) }
            var bytes = Array(name.utf8)
            let abstract = bytes.first == UInt8(ascii: "@")
            if abstract { bytes[0] = 0 }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0 else { throw Failure(step: "bind", errno: errno) }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(fd)
            if name.hasPrefix("/") { unlink(name) }
        }

        /// The next datagram, or nil after 2 s.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count < 0 ? nil : String(decoding: buffer.prefix(count), as: UTF8.self)
        }

        /// Nothing waiting now.
        func isEmpty() -> Bool {
            var buffer = [UInt8](repeating: 0, count: 16)
            return recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) < 0
        }

        struct Failure: Error { let step: String; let errno: Int32 }
    }

    func exchange(_ name: String) throws {
        let systemd = try FakeSystemd(name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "6000000", "WATCHDOG_PID": "4242"], pid: 4242)
        #expect(notifier.socketPath == name)
        #expect(notifier.watchdogInterval == .seconds(6))
        #expect(notifier.ready(status: "member of 3, quorate; synced in 514 ms") == nil)
        #expect(systemd.receive() == "READY=1\nSTATUS=member of 3, quorate; synced in 514 ms")
        #expect(notifier.status("lost Corosync\nrefusing requests") == nil)
        #expect(systemd.receive() == "STATUS=lost Corosync refusing requests", "a status is one line")
        #expect(notifier.watchdog() == nil)
        #expect(systemd.receive() == "WATCHDOG=1")
        #expect(notifier.stopping(status: "leaving the watchdog armed: 2 VMs run here") == nil)
        #expect(systemd.receive() == "STOPPING=1\nSTATUS=leaving the watchdog armed: 2 VMs run here")
        #expect(systemd.isEmpty())
    }

    @Test func speaksToAPathSocket() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try exchange(scratch.path + "/notify")
    }

    @Test func speaksToAnAbstractSocket() throws {
        try exchange("@corral-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    @Test func watchdogOnlyWhenSystemdAsksForThisProcess() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let systemd = try FakeSystemd(scratch.path + "/notify")
        let otherPID = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "6000000", "WATCHDOG_PID": "1"], pid: 4242)
        #expect(otherPID.watchdogInterval == nil)
        let noWatchdog = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.name], pid: 4242)
        #expect(noWatchdog.watchdogInterval == nil)
        #expect(otherPID.watchdog() == nil && noWatchdog.watchdog() == nil)
        #expect(systemd.isEmpty(), "WATCHDOG=1 is not sent unless systemd's watchdog is on for this process")
        let noPID = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "500000"], pid: 4242)
        #expect(noPID.watchdogInterval == .milliseconds(500))
    }

    @Test func silentOutsideSystemdAndClearWhenTheSocketIsGone() throws {
        let outside = SystemdNotifier(environment: [:])
        #expect(outside.socketPath == nil && outside.watchdogInterval == nil)
        #expect(outside.ready(status: "x") == nil)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let gone = SystemdNotifier(environment: ["NOTIFY_SOCKET": scratch.path + "/nobody"])
        #expect(gone.ready(status: "x")?.description == "cannot notify systemd at \(scratch.path)/nobody: No such file or directory")
        let relative = SystemdNotifier(environment: ["NOTIFY_SOCKET": "notify"])
        #expect(relative.status("x")?.problem == "NOTIFY_SOCKET is neither an absolute path nor an @abstract name")
    }
}
