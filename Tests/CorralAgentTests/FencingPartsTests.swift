@testable import CorralAgent
import CorralCore
import Foundation
import Synchronization
import Testing

/// The agent's fencing parts at their interfaces: the deadline file the local cluster's test
/// watchdog reads, the Linux watchdog device (there is none on this machine: its error), the
/// fence agent's exit-status contract, and corrald's flags for them. Serialized: a script
/// written while another test forks could be "text file busy" when run.
@Suite(.serialized) struct FencingPartsTests {
    @Test func deadlineFileIsArmedInheritedAndDisarmed() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let watchdog = DeadlineFileWatchdog(path: scratch.path + "/watchdog")
        #expect(watchdog.inheritedDeadline() == nil, "no file: nothing to inherit")
        let deadline = BootClock.now() + 5_000
        watchdog.arm(until: deadline)
        #expect(try String(contentsOfFile: scratch.path + "/watchdog", encoding: .utf8) == "\(deadline)\n")
        #expect(watchdog.inheritedDeadline() == deadline)
        watchdog.arm(until: BootClock.now() - 1)
        #expect(watchdog.inheritedDeadline() == nil, "a deadline in the past is no lease")
        watchdog.disarm()
        #expect(try String(contentsOfFile: scratch.path + "/watchdog", encoding: .utf8) == "0\n")
    }

    @Test func missingWatchdogDeviceIsAClearError() throws {
        let configuration = try AgentConfiguration(arguments: ["--hypervisor", "libvirt", "--watchdog", "device:/dev/corral-no-such-watchdog"], hostname: "h")
        #expect(throws: AgentConfigurationError.self) { try configuration.makeWatchdog() }
        do { _ = try configuration.makeWatchdog() } catch {
            #expect(error.description.contains("cannot open the watchdog /dev/corral-no-such-watchdog"))
            #expect(error.description.contains("--watchdog none"))
        }
    }

    @Test(arguments: [
        (["--watchdog", "sometimes"], "--watchdog takes none, device:PATH or file:PATH, not sometimes"),
        (["--hypervisor", "xen"], "--hypervisor takes libvirt or none, not xen"),
        (["--fence-agent", "fence.sh"], "--fence-agent takes an absolute path, not fence.sh"),
        (["--migration-uri", "qemu+tls://host/system"], "--migration-uri must contain {address}, e.g. qemu+tls://{address}/system"),
    ])
    func badFencingFlagsAreRefusedByName(arguments: [String], message: String) {
        #expect(throws: AgentConfigurationError.self) { try AgentConfiguration(arguments: arguments, hostname: "h") }
        do { _ = try AgentConfiguration(arguments: arguments, hostname: "h") } catch {
            #expect(error.description == message)
        }
    }

    /// Exit status 0 confirms the node off; anything else does not.
    @Test(arguments: [(0, true), (1, false)])
    func fenceAgentExitStatusDecides(status: Int, fenced: Bool) async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let script = scratch.path + "/fence"
        try "#!/bin/sh\necho \"fencing $1\"\nexit \(status)\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let agent = FenceAgent(command: script, timeoutSeconds: 10)
        let result = await withCheckedContinuation { continuation in
            agent.fence("node2", log: AgentLog(path: scratch.path + "/log")) { continuation.resume(returning: $0) }
        }
        #expect(result == fenced)
        let log = try String(contentsOfFile: scratch.path + "/log", encoding: .utf8)
        #expect(log.contains("fence agent for node2 exited \(status)"))
        #expect(log.contains("fencing node2"))
    }
}
