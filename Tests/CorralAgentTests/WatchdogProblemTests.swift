import CWatchdog
import CorralCore
import Foundation
import Glibc
import Synchronization
import Testing
@testable import CorralAgent

/// The watchdog's answers are checked and its failures returned by `arm` (the agent feeds
/// them to the core as `.watchdogFailed`): this machine has no watchdog device, so the ioctl
/// layer is a fake that fails on demand; the deadline file is real.
@Suite struct WatchdogProblemTests {
    /// A device whose answers the test sets.
    final class FakeDevice: WatchdogDeviceControl, @unchecked Sendable {
        struct Answers {
            var options: UInt32 = corral_watchdog_can_set_timeout_flag()
            var supportError: Int32?
            var setTimeoutError: Int32?
            /// What the driver writes back: nil takes what was asked.
            var takes: Int32?
            var keepaliveError: Int32?
            var keepalives = 0
            var asked: [Int32] = []
        }
        let answers: Mutex<Answers>
        init(_ answers: Answers = Answers()) { self.answers = Mutex(answers) }

        func supportOptions() throws(SystemCallFailure) -> UInt32 {
            let (options, error) = answers.withLock { ($0.options, $0.supportError) }
            if let error { throw SystemCallFailure(code: error) }
            return options
        }
        func setTimeout(seconds: Int32) throws(SystemCallFailure) -> Int32 {
            let (error, takes) = answers.withLock { a in
                a.asked.append(seconds)
                return (a.setTimeoutError, a.takes)
            }
            if let error { throw SystemCallFailure(code: error) }
            return takes ?? seconds
        }
        func keepalive() throws(SystemCallFailure) {
            let error = answers.withLock { a in
                a.keepalives += 1
                return a.keepaliveError
            }
            if let error { throw SystemCallFailure(code: error) }
        }
        func closeDisarmed() {}
    }

    static func device(_ fake: FakeDevice, _ scratch: ScratchDirectory) -> LinuxWatchdogDevice {
        LinuxWatchdogDevice(control: fake, name: "/dev/fake-watchdog", deadlinePath: scratch.path + "/lease-deadline")
    }

    @Test func workingDeviceReportsNothing() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let fake = FakeDevice()
        let watchdog = Self.device(fake, scratch)
        #expect(watchdog.arm(until: BootClock.now() + 10_500) == nil)
        #expect(fake.answers.withLock { $0.keepalives } == 1)
        let asked = fake.answers.withLock { $0.asked }
        #expect(asked.count == 1 && asked[0] >= 9 && asked[0] <= 10)
    }

    @Test func keepaliveErrorIsAProblem() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var answers = FakeDevice.Answers()
        answers.keepaliveError = EIO
        let watchdog = Self.device(FakeDevice(answers), scratch)
        let problem = watchdog.arm(until: BootClock.now() + 10_000)
        #expect(problem?.description.contains("WDIOC_KEEPALIVE") == true, "\(String(describing: problem))")
        #expect(watchdog.arm(until: BootClock.now() + 10_000) == problem, "the same problem at the next renewal")
    }

    @Test func setTimeoutErrorIsAProblemAndTheCountdownStillRestarts() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var answers = FakeDevice.Answers()
        answers.setTimeoutError = EINVAL
        let fake = FakeDevice(answers)
        let problem = Self.device(fake, scratch).arm(until: BootClock.now() + 10_000)
        #expect(problem?.description.contains("WDIOC_SETTIMEOUT") == true, "\(String(describing: problem))")
        #expect(fake.answers.withLock { $0.keepalives } == 1, "a problem never resets the node by itself")
    }

    /// The driver rounds to what its hardware can do and writes that back: longer than asked
    /// would reset the node only after its lease ended.
    @Test func timeoutLongerThanAskedIsAProblem() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var answers = FakeDevice.Answers()
        answers.takes = 60
        let watchdog = Self.device(FakeDevice(answers), scratch)
        let problem = watchdog.arm(until: BootClock.now() + 10_000)
        #expect(problem?.description.contains("60 s") == true, "\(String(describing: problem))")
        #expect(watchdog.arm(until: BootClock.now() + 8_000) == problem, "one problem, whatever the seconds asked")
        answers.takes = 5
        #expect(Self.device(FakeDevice(answers), scratch).arm(until: BootClock.now() + 10_000) == nil, "shorter is safe")
    }

    @Test func deviceThatCannotSetItsTimeoutIsAProblemFromTheStart() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var answers = FakeDevice.Answers()
        answers.options = 0
        let fake = FakeDevice(answers)
        let problem = Self.device(fake, scratch).arm(until: BootClock.now() + 10_000)
        #expect(problem?.description.contains("WDIOF_SETTIMEOUT") == true, "\(String(describing: problem))")
        #expect(fake.answers.withLock { $0.asked }.isEmpty, "no timeout is set on a device that cannot take it")
        answers.options = 0
        answers.supportError = ENOTTY
        #expect(Self.device(FakeDevice(answers), scratch).arm(until: BootClock.now() + 10_000)?.description.contains("WDIOC_GETSUPPORT") == true)
    }

    @Test func deadlineFileThatCannotBeWrittenIsAProblem() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let missing = DeadlineFileWatchdog(path: scratch.path + "/no-such-directory/watchdog")
        let problem = missing.arm(until: BootClock.now() + 5_000)
        #expect(problem?.description.contains("No such file or directory") == true, "\(String(describing: problem))")
        #expect(missing.arm(until: BootClock.now() + 6_000) == problem, "the same failure is the same problem")

        // The rename fails: the deadline path is a non-empty directory.
        try FileManager.default.createDirectory(atPath: scratch.path + "/occupied/inside", withIntermediateDirectories: true)
        let blocked = DeadlineFileWatchdog(path: scratch.path + "/occupied")
        #expect(blocked.arm(until: BootClock.now() + 5_000)?.description.contains("rename") == true)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/occupied.new"), "no half-written file is left")

        // And the device reports its deadline file's problem too.
        let device = LinuxWatchdogDevice(control: FakeDevice(), name: "/dev/fake-watchdog",
                                         deadlinePath: scratch.path + "/no-such-directory/lease-deadline")
        #expect(device.arm(until: BootClock.now() + 5_000) != nil)
    }
}
