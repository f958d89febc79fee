import CWatchdog
import CorralCore
import Foundation
import Glibc

/// What resets this node if the agent stops renewing its self-fence lease (the agent hangs,
/// or is killed while VMs run). Armed to the lease deadline at every renewal, so the node is
/// reset no later than the lease ends even if the agent never runs again.
public protocol Watchdog: Sendable {
    /// Fire at `deadline` (BootClock ms) unless armed again before.
    func arm(until deadline: Millis)
    /// A clean shutdown: stop the countdown.
    func disarm()
    /// The deadline a previous run of the agent armed, if it is still in the future.
    func inheritedDeadline() -> Millis?
}

/// No watchdog: a hung agent is only caught by the other nodes' lease arithmetic, which is
/// safe only if the agent's own stop at lease end runs. For demos and record-only nodes.
public struct NoWatchdog: Watchdog {
    public init() {}
    public func arm(until deadline: Millis) {}
    public func disarm() {}
    public func inheritedDeadline() -> Millis? { nil }
}

/// A watchdog emulated for `Deploy/local-cluster`: the deadline is written to a file that a
/// supervisor outside the node's namespaces polls; past it, the supervisor kills every
/// process of that node (the test fence). Never touches the host's own /dev/watchdog.
public final class DeadlineFileWatchdog: Watchdog {
    let path: String

    public init(path: String) { self.path = path }

    public func arm(until deadline: Millis) { write("\(deadline)\n") }
    public func disarm() { write("0\n") }

    public func inheritedDeadline() -> Millis? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let deadline = Millis(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              deadline > BootClock.now() else { return nil }
        return deadline
    }

    /// Write-then-rename, so the supervisor never reads half a number.
    private func write(_ text: String) {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = try? POSIXSupport.writeAll(Array(text.utf8), to: fd)
        close(fd)
        rename(temporary, path)
    }
}

/// The Linux watchdog device (`/dev/watchdog`, e.g. softdog or a hardware timer): every
/// renewal sets the timeout to the whole seconds left of the lease and restarts the countdown,
/// so the reset comes at or before the lease end. With under a second left, the previous
/// (earlier) countdown is left running. `disarm` writes the magic 'V' before closing.
public final class LinuxWatchdogDevice: Watchdog, @unchecked Sendable {
    private let fd: Int32
    private let deadlineFile: DeadlineFileWatchdog

    /// Opens the device (which starts it). `runDirectory` (on tmpfs, so a reboot empties it:
    /// a boot-clock deadline means nothing after one) keeps the last deadline for the next run
    /// of the agent, since the device cannot be asked for it.
    init(device: String, runDirectory: String) throws(SystemCallFailure) {
        fd = open(device, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .current() }
        deadlineFile = DeadlineFileWatchdog(path: runDirectory + "/lease-deadline")
    }

    public func arm(until deadline: Millis) {
        var seconds = Int32(clamping: (deadline - BootClock.now()) / 1000)
        guard seconds >= 1 else { return }
        _ = corral_watchdog_set_timeout(fd, &seconds)
        _ = corral_watchdog_keepalive(fd)
        deadlineFile.arm(until: deadline)
    }

    public func disarm() {
        _ = Glibc.write(fd, "V", 1)
        close(fd)
        deadlineFile.disarm()
    }

    public func inheritedDeadline() -> Millis? { deadlineFile.inheritedDeadline() }
}
