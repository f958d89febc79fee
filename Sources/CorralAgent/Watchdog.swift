import CWatchdog
import CorralCore
import Foundation
import Glibc

/// Why the watchdog cannot be trusted to reset this node at its lease end. The agent tells the
/// core once per distinct problem, not at every renewal: problems are equal when their `kind`
/// is (the description may hold figures that vary from one renewal to the next).
public struct WatchdogProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed, stable across renewals (e.g. "WDIOC_KEEPALIVE: errno 5").
    public var kind: String
    public var description: String
    public init(_ description: String, kind: String? = nil) {
        self.description = description
        self.kind = kind ?? description
    }
    public static func == (a: Self, b: Self) -> Bool { a.kind == b.kind }
}

/// What resets this node if the agent stops renewing its self-fence lease (the agent hangs,
/// or is killed while VMs run). Armed to the lease deadline at every renewal, so the node is
/// reset no later than the lease ends even if the agent never runs again.
public protocol Watchdog: Sendable {
    /// Fire at `deadline` (BootClock ms) unless armed again before. Returns why it could not
    /// be armed as asked (a device or file error, a timeout the device cannot take), or nil.
    @discardableResult func arm(until deadline: Millis) -> WatchdogProblem?
    /// A clean shutdown: stop the countdown.
    func disarm()
    /// The deadline a previous run of the agent armed, if it is still in the future.
    func inheritedDeadline() -> Millis?
}

/// No watchdog: a hung agent is only caught by the other nodes' lease arithmetic, which is
/// safe only if the agent's own stop at lease end runs. For demos and record-only nodes.
public struct NoWatchdog: Watchdog {
    public init() {}
    @discardableResult public func arm(until deadline: Millis) -> WatchdogProblem? { nil }
    public func disarm() {}
    public func inheritedDeadline() -> Millis? { nil }
}

/// A watchdog emulated for `Deploy/local-cluster`: the deadline is written to a file that a
/// supervisor outside the node's namespaces polls; past it, the supervisor kills every
/// process of that node (the test fence). Never touches the host's own /dev/watchdog.
public final class DeadlineFileWatchdog: Watchdog {
    let path: String

    public init(path: String) { self.path = path }

    /// A deadline that did not reach the file is a problem: the supervisor keeps the old one.
    @discardableResult public func arm(until deadline: Millis) -> WatchdogProblem? { write("\(deadline)\n") }
    public func disarm() { _ = write("0\n") }

    public func inheritedDeadline() -> Millis? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let deadline = Millis(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              deadline > BootClock.now() else { return nil }
        return deadline
    }

    /// Write-then-rename, so the supervisor never reads half a number. The problem names the
    /// step and errno (not the deadline), so the same failure is the same problem.
    private func write(_ text: String) -> WatchdogProblem? {
        let temporary = path + ".new"
        func problem(_ step: String, _ code: Int32) -> WatchdogProblem {
            WatchdogProblem("cannot \(step) the deadline file \(path): \(POSIXSupport.describe(errno: code)) (errno \(code))")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return problem("create", errno) }
        do { try POSIXSupport.writeAll(Array(text.utf8), to: fd) } catch {
            close(fd)
            unlink(temporary)
            return problem("write", error.code)
        }
        guard close(fd) == 0 else {
            let code = errno
            unlink(temporary)
            return problem("write", code)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            return problem("rename into place", code)
        }
        return nil
    }
}

/// The ioctls `LinuxWatchdogDevice` makes, apart so tests can make them fail.
protocol WatchdogDeviceControl: Sendable {
    /// WDIOC_GETSUPPORT's option flags.
    func supportOptions() throws(SystemCallFailure) -> UInt32
    /// WDIOC_SETTIMEOUT; returns the timeout the driver took (it writes it back).
    func setTimeout(seconds: Int32) throws(SystemCallFailure) -> Int32
    /// WDIOC_KEEPALIVE.
    func keepalive() throws(SystemCallFailure)
    /// Writes the magic 'V' (stop on close) and closes.
    func closeDisarmed()
}

/// The real device behind an open file descriptor.
struct WatchdogDeviceFile: WatchdogDeviceControl {
    let fd: Int32

    func supportOptions() throws(SystemCallFailure) -> UInt32 {
        var options: UInt32 = 0
        guard corral_watchdog_get_support(fd, &options) == 0 else { throw .current() }
        return options
    }

    func setTimeout(seconds: Int32) throws(SystemCallFailure) -> Int32 {
        var taken = seconds
        guard corral_watchdog_set_timeout(fd, &taken) == 0 else { throw .current() }
        return taken
    }

    func keepalive() throws(SystemCallFailure) {
        guard corral_watchdog_keepalive(fd) == 0 else { throw .current() }
    }

    func closeDisarmed() {
        _ = Glibc.write(fd, "V", 1)
        close(fd)
    }
}

/// The Linux watchdog device (`/dev/watchdog`, e.g. softdog or a hardware timer): every
/// renewal sets the timeout to the whole seconds left of the lease and restarts the countdown,
/// so the reset comes at or before the lease end. With under a second left, the previous
/// (earlier) countdown is left running. `disarm` writes the magic 'V' before closing.
///
/// Every answer is checked, and `arm` returns what went wrong: a driver without
/// `WDIOF_SETTIMEOUT` (found at open), a failed WDIOC_SETTIMEOUT or WDIOC_KEEPALIVE, a timeout
/// the driver took longer than asked (it rounds to what its hardware can do, and it writes that
/// back: longer would reset the node only after its lease ended), or a deadline file that could
/// not be written. The countdown is still restarted when it can be, so a problem never resets
/// the node by itself.
public final class LinuxWatchdogDevice: Watchdog, @unchecked Sendable {
    private let device: WatchdogDeviceControl
    private let deadlineFile: DeadlineFileWatchdog
    /// Found at open and reported at every renewal.
    private let openProblem: WatchdogProblem?

    /// Opens the device (which starts it). `runDirectory` (on tmpfs, so a reboot empties it:
    /// a boot-clock deadline means nothing after one) keeps the last deadline for the next run
    /// of the agent, since the device cannot be asked for it.
    convenience init(device: String, runDirectory: String) throws(SystemCallFailure) {
        let fd = open(device, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .current() }
        self.init(control: WatchdogDeviceFile(fd: fd), name: device, deadlinePath: runDirectory + "/lease-deadline")
    }

    init(control: WatchdogDeviceControl, name: String, deadlinePath: String) {
        device = control
        deadlineFile = DeadlineFileWatchdog(path: deadlinePath)
        do {
            let options = try control.supportOptions()
            openProblem = options & corral_watchdog_can_set_timeout_flag() == 0
                ? WatchdogProblem("the watchdog \(name) cannot set its timeout (no WDIOF_SETTIMEOUT): it cannot follow the lease")
                : nil
        } catch {
            openProblem = WatchdogProblem("cannot ask the watchdog \(name) what it supports (WDIOC_GETSUPPORT): \(Self.describe(error))")
        }
    }

    @discardableResult public func arm(until deadline: Millis) -> WatchdogProblem? {
        let asked = Int32(clamping: (deadline - BootClock.now()) / 1000)
        guard asked >= 1 else { return openProblem }
        var problem = openProblem
        if problem == nil {
            do {
                let taken = try device.setTimeout(seconds: asked)
                if taken > asked {
                    problem = WatchdogProblem("the watchdog took a timeout longer than asked (\(taken) s for \(asked) s): it would reset this node only after its lease ends",
                                              kind: "timeout longer than asked")
                }
            } catch {
                problem = WatchdogProblem("cannot set the watchdog timeout (WDIOC_SETTIMEOUT): \(Self.describe(error))")
            }
        }
        do { try device.keepalive() } catch {
            problem = problem ?? WatchdogProblem("cannot restart the watchdog countdown (WDIOC_KEEPALIVE): \(Self.describe(error))")
        }
        let fileProblem = deadlineFile.arm(until: deadline)
        return problem ?? fileProblem
    }

    public func disarm() {
        device.closeDisarmed()
        deadlineFile.disarm()
    }

    public func inheritedDeadline() -> Millis? { deadlineFile.inheritedDeadline() }

    private static func describe(_ failure: SystemCallFailure) -> String {
        "\(POSIXSupport.describe(errno: failure.code)) (errno \(failure.code))"
    }
}
