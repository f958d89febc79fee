import CorralCore
import Dispatch
import Glibc
import Synchronization

/// What one multicast attempt came to.
enum MulticastOutcome: Sendable, Equatable {
    case sent
    /// Refused for now without doing anything (Corosync syncing a membership, flow control):
    /// the same message may be tried again.
    case transient(String)
    /// Failed for good (no group, a broken connection, a message too big).
    case failed(String)
}

/// Multicasts the core's envelopes off the agent's serial loop, on one serial queue of its own,
/// so a Corosync that answers `CS_ERR_TRY_AGAIN` for a while (a membership sync, flow control)
/// blocks neither the loop nor a thread of Swift's cooperative pool. Messages go out in the
/// order they were queued: each is tried until it is sent or has failed for good before the
/// next is tried. Transient refusals are retried with backoff (1, 2, 4 … 256 ms, about
/// `retryBudgetMs` in all); a message that still cannot be sent is reported through `failed`
/// with its sequence number, which the agent feeds to the core as `.broadcastFailed`.
/// After a failure for good the queue pauses `pauseAfterFailureMs`, so a core that re-sends at
/// once cannot spin the CPU while the failure lasts.
final class Broadcaster: Sendable {
    typealias Attempt = @Sendable ([UInt8]) -> MulticastOutcome

    private let queue = DispatchQueue(label: "corral.multicast", qos: .userInitiated)
    private let retryBudgetMs: UInt32
    private let pauseAfterFailureMs: UInt32
    private let failed: @Sendable (_ sequence: UInt64, _ reason: String) -> Void
    /// Messages queued and not yet sent or failed.
    private let backlog = Mutex(0)

    init(retryBudgetMs: UInt32 = 2_000, pauseAfterFailureMs: UInt32 = 50,
         failed: @escaping @Sendable (_ sequence: UInt64, _ reason: String) -> Void) {
        self.retryBudgetMs = retryBudgetMs
        self.pauseAfterFailureMs = pauseAfterFailureMs
        self.failed = failed
    }

    /// Queues `envelope` for `attempt` (the group it goes to, bound when it was queued) and
    /// returns at once.
    func send(_ envelope: Envelope, with attempt: @escaping Attempt) {
        backlog.withLock { $0 += 1 }
        queue.async { [self] in
            defer { backlog.withLock { $0 -= 1 } }
            if let reason = deliver(EnvelopeCodec.encode(envelope), attempt) {
                failed(envelope.sequence, reason)
                if pauseAfterFailureMs > 0 { usleep(pauseAfterFailureMs * 1000) }
            }
        }
    }

    /// Messages queued and not yet finished.
    var pending: Int { backlog.withLock { $0 } }

    /// Blocks until every message queued so far is sent or reported (shutdown).
    func flush() { queue.sync {} }

    /// Nil once sent, else why not.
    private func deliver(_ bytes: [UInt8], _ attempt: Attempt) -> String? {
        var delayMs: UInt32 = 1
        var waitedMs: UInt32 = 0
        var tries = 0
        while true {
            tries += 1
            switch attempt(bytes) {
            case .sent: return nil
            case let .failed(reason): return reason
            case let .transient(reason):
                guard waitedMs < retryBudgetMs else { return "\(reason) (still refused after \(tries) tries over \(waitedMs) ms)" }
                let delay = min(delayMs, retryBudgetMs - waitedMs)
                usleep(delay * 1000)
                waitedMs += delay
                delayMs = min(delayMs * 2, 256)
            }
        }
    }
}
