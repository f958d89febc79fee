import CorralCore
import CorosyncTransport

/// Turns what Corosync reports (`CorosyncEvent`) into the core's inputs. Owned by the agent's
/// serial loop; no I/O, so tests drive it with hand-made events.
///
/// Deliveries: a frame that does not decode, or whose envelope names another origin than the
/// CPG sender, becomes `.undecodable(from:reason:)` — the core then knows it may have missed a
/// command the others applied — never a silent drop.
///
/// Quorum is votequorum's verdict, not a head count of the CPG group: votequorum knows the
/// configured votes, `two_node`, `wait_for_all`, `last_man_standing` and the like, and it is
/// what every other Corosync client on the node believes. The core gets
/// `.membership(members:quorate:agentOnly:)` with the CPG group's members (the agents) and
/// votequorum's verdict; when the verdict changes without a CPG change, `.quorum(quorate)`:
/// the core then asks for a new sync round through the agreed order instead of starting one
/// of its own (a round started by one member alone never completes with the others).
///
/// Ordering: CPG configuration changes and votequorum notifications come over two IPC
/// connections and `EventDispatcher` serves whichever fd is ready (CPG first within one poll
/// round), so either may come first, and a votequorum notification read after a CPG change may
/// still describe the membership before it. The rule that keeps a node from ever believing it
/// is quorate when votequorum says it is not:
/// - before the first votequorum notification, and after a disconnection, not quorate;
/// - the last verdict counts only while it can speak for the current membership: when a CPG
///   change says nodes went down (left, not only their agent) that votequorum's last member list
///   still holds, the verdict predates their departure — not quorate until a notification whose
///   members no longer hold them arrives (a minority side would otherwise act on its old
///   majority for a moment);
/// - nodes joining never wait: a join cannot take quorum away, and a non-quorate verdict stays
///   non-quorate until votequorum says otherwise.
struct CorosyncInputs {
    /// The CPG group's members at the last configuration change; nil before the first.
    private(set) var members: [NodeID]?
    private var agentOnly: [NodeID] = []
    /// votequorum's last notification; nil before the first one and after a disconnection.
    private(set) var verdict: (quorate: Bool, members: [NodeID])?
    /// Nodes a CPG change reported down that votequorum's last member list still holds.
    private(set) var unconfirmedDepartures: Set<NodeID> = []

    /// What the core is told about quorum now.
    var quorate: Bool { (verdict?.quorate ?? false) && unconfirmedDepartures.isEmpty }

    /// The core's input for a delivery: the envelope, or why it cannot be used.
    static func delivery(from sender: NodeID, payload: [UInt8]) -> Input {
        let envelope: Envelope
        do { envelope = try EnvelopeCodec.decode(payload) } catch {
            return .undecodable(from: sender, reason: error.description)
        }
        guard envelope.origin == sender else {
            return .undecodable(from: sender, reason: "the envelope claims to be from node \(envelope.origin)")
        }
        return .delivered(envelope)
    }

    /// A CPG configuration change.
    mutating func membership(members: [NodeID], left: [NodeID], agentOnly: [NodeID]) -> Input {
        self.members = members
        self.agentOnly = agentOnly
        let down = Set(left).subtracting(agentOnly)
        let stillListed = down.intersection(verdict?.members ?? [])
        unconfirmedDepartures.formUnion(stillListed)
        // A node back in the group is no longer a departure to wait for.
        unconfirmedDepartures.subtract(members)
        return .membership(members: members, quorate: quorate, agentOnly: agentOnly)
    }

    /// A votequorum notification: `.quorum` when what the core was told changes.
    mutating func quorum(quorate newVerdict: Bool, members quorumMembers: [NodeID]) -> Input? {
        let before = quorate
        verdict = (newVerdict, quorumMembers)
        unconfirmedDepartures.formIntersection(quorumMembers)
        guard members != nil, quorate != before else { return nil }
        return .quorum(quorate)
    }

    /// The connection to Corosync is gone: nothing it said before counts.
    mutating func disconnected() {
        members = nil
        agentOnly = []
        verdict = nil
        unconfirmedDepartures = []
    }
}
