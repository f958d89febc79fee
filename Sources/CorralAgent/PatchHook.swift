import CorralCore
import Foundation

/// Runs a patch run's hook command on this node: `/bin/sh -c COMMAND` under `timeout(1)` (a
/// hook past its time gets SIGTERM, then SIGKILL 10 s later, and answers 124 or 137), on its
/// own thread, since a hook may take many minutes or reboot the node. The hook sees
/// CORRAL_PATCH_RUN, CORRAL_PATCH_NODE, CORRAL_PATCH_PHASE and CORRAL_PATCH_ATTEMPT.
public enum PatchHook {
    /// Lines of output kept for the report.
    public static let tailLines = 20

    public static func run(_ command: String, node: String, run: Int, phase: PatchPhase, attempt: Int, timeoutMs: Int,
                           log: AgentLog, done: @escaping @Sendable (PatchHookResult) -> Void) {
        let seconds = max(1, (timeoutMs + 999) / 1000)
        let arguments = ["/usr/bin/timeout", "--kill-after=10", "\(seconds)", "/bin/sh", "-c", command]
        let environment = ["CORRAL_PATCH_RUN": "\(run)", "CORRAL_PATCH_NODE": node,
                           "CORRAL_PATCH_PHASE": phase.rawValue, "CORRAL_PATCH_ATTEMPT": "\(attempt)"]
        log.write("patch run \(run): running the \(phase.rawValue) hook (attempt \(attempt), timeout \(seconds) s): \(command)")
        Thread.detachNewThread {
            let started = BootClock.now()
            let result = CommandRunner.run(arguments, environment: environment)
            let tail = result.output.split(separator: "\n", omittingEmptySubsequences: false).suffix(tailLines).joined(separator: "\n")
            done(PatchHookResult(status: Int(result.status), outputTail: tail, durationMs: Int(BootClock.now() - started)))
        }
    }
}
