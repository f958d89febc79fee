import CorralCore
import Dispatch
import Synchronization

/// Saves the replicated state off the agent's serial loop: encoding, writing and the two fsyncs
/// run on one serial queue of their own, so a slow or stalled disk delays the state file, never
/// the loop (and never a thread of Swift's cooperative pool). Saves stay in order and the latest
/// state wins: a save queued while an earlier one still writes replaces any state not yet
/// written, so a backlog is written once, as its newest state.
final class StateSaver: Sendable {
    typealias Write = @Sendable ([UInt8]) throws -> Void

    private let queue = DispatchQueue(label: "corral.state-save", qos: .utility)
    private let write: Write
    private let log: @Sendable (String) -> Void
    private let waiting = Mutex<ClusterState?>(nil)
    /// The last failure, so a failing disk is reported once and its recovery once.
    private let lastFailure = Mutex<String?>(nil)
    private let written = Mutex(0)

    init(write: @escaping Write, log: @escaping @Sendable (String) -> Void) {
        self.write = write
        self.log = log
    }

    convenience init(store: StateFileStore, log: AgentLog) {
        self.init(write: { bytes throws in try store.save(bytes) }, log: { log.write($0) })
    }

    /// Queues `state` and returns at once.
    func save(_ state: ClusterState) {
        let scheduled = waiting.withLock { waiting in
            defer { waiting = state }
            return waiting != nil
        }
        // A save already queued will take this state.
        if scheduled { return }
        queue.async { [self] in
            guard let state = waiting.withLock({ waiting in defer { waiting = nil }; return waiting }) else { return }
            do {
                try write(JSONCoding.encode(state))
                written.withLock { $0 += 1 }
                if lastFailure.withLock({ failure in defer { failure = nil }; return failure }) != nil {
                    log("the state file is saved again")
                }
            } catch {
                let text = "\(error)"
                let isNew = lastFailure.withLock { failure in
                    defer { failure = text }
                    return failure != text
                }
                if isNew { log("cannot save state: \(text)") }
            }
        }
    }

    /// How many saves reached the store.
    var saves: Int { written.withLock { $0 } }

    /// Blocks until every state queued so far is written (or failed): for shutdown.
    func flush() { queue.sync {} }
}
