import CorralCore
import CorosyncTransport
import Foundation
import Synchronization

/// Polls Corosync's link heartbeat (`CorosyncLinks`) every agent tick on a thread of its own,
/// because its calls block while Corosync is stopped and the agent's loop must never block,
/// and reports each change of the set of unreachable peers that two polls in a row agree on.
/// Reopens the statistics map after Corosync restarts.
final class LinkWatch: Sendable {
    private let stopped = Atomic(false)

    init(report: @escaping @Sendable ([NodeID]) -> Void) {
        Thread.detachNewThread { [self] in
            var links: CorosyncLinks?
            var last: [NodeID] = []
            var previous: [NodeID] = []
            while !stopped.load(ordering: .relaxed) {
                do {
                    if links == nil { links = try CorosyncLinks() }
                    let now = try links!.unreachable()
                    // Reported once two polls agree, so a link coming up and down does not flap.
                    if now == previous, now != last {
                        last = now
                        report(now)
                    }
                    previous = now
                } catch {
                    links = nil
                }
                usleep(UInt32(AgentLoop.tickMs) * 1000)
            }
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }
}
