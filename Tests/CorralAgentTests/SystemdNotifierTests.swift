@testable import CorralAgent
import CorralTestbed
import Foundation
import Glibc
import Testing

/// The sd_notify protocol spoken to a real AF_UNIX datagram socket standing in for systemd:
/// a filesystem path and an abstract `@name`, the exact datagrams, the watchdog settings, and
/// silence outside systemd.
@Suite struct SystemdNotifierTests {
    func exchange(_ name: String) throws {
        let systemd = try NotifyListener(name)
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
        let systemd = try NotifyListener(scratch.path + "/notify")
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
