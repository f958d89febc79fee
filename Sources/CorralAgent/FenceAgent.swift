import CorralCore
import Foundation

/// The operator's fence agent (an IPMI/Redfish script, or `Deploy/fence-local` in a local
/// cluster): run as `COMMAND NODE_NAME`; exit status 0 means the node is confirmed off. It runs
/// on its own thread, because a fence agent may take seconds, and it is bounded by a timeout
/// after which the node counts as not confirmed (the lease still fences it).
public struct FenceAgent: Sendable {
    public var command: String
    public var timeoutSeconds: Int

    public init(command: String, timeoutSeconds: Int = 60) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }

    public func fence(_ node: String, log: AgentLog, done: @escaping @Sendable (Bool) -> Void) {
        let arguments = ["/usr/bin/timeout", "\(timeoutSeconds)", command, node]
        Thread.detachNewThread {
            let started = BootClock.now()
            let result = CommandRunner.run(arguments)
            let output = result.output.split(separator: "\n").suffix(5).joined(separator: " | ")
            log.write("fence agent for \(node) exited \(result.status) after \(BootClock.now() - started) ms: \(output)")
            done(result.status == 0)
        }
    }
}
