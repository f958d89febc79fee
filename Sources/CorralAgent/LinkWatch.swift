import CorralCore
import CorosyncTransport
import Foundation
import Synchronization

/// Polls Corosync's link heartbeat (`CorosyncLinks`) every 250 ms on a thread of its own,
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
            var polls = 0
            while !stopped.load(ordering: .relaxed) {
                do {
                    if links == nil { links = try CorosyncLinks() }
                    polls += 1
                    if polls % Self.discoverEvery == 0 { try links!.discover() }
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
                usleep(Self.pollMs * 1000)
            }
        }
    }

    /// Knet itself takes from a fraction of a second to a token timeout to call a link down;
    /// two agreeing polls 250 ms apart add half a second, still seconds before the membership.
    static let pollMs: UInt32 = 250
    /// Peers and links can change with the configuration: look for their keys every ~30 s.
    static let discoverEvery = 120

    func stop() { stopped.store(true, ordering: .relaxed) }
}
