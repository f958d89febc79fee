import CorralCore
import Testing
@testable import CorralAgent

/// What the core is told about Corosync's events: unreadable deliveries are reported, not
/// dropped; quorum is votequorum's verdict, in whichever order its notification and the CPG
/// change arrive, and never quorate when votequorum says otherwise.
@Suite struct CorosyncInputsTests {
    /// The membership an input carries, or nil for any other input.
    static func membership(_ input: Input?) -> (members: [NodeID], quorate: Bool, agentOnly: [NodeID])? {
        guard case let .membership(members, quorate, agentOnly)? = input else { return nil }
        return (members, quorate, agentOnly)
    }

    /// The verdict a quorum-only input carries, or nil for any other input.
    static func verdict(_ input: Input?) -> Bool? {
        guard case let .quorum(quorate)? = input else { return nil }
        return quorate
    }

    // MARK: deliveries

    @Test func garbledDeliveryIsUndecodable() {
        var bytes = EnvelopeCodec.encode(Envelope(origin: 2, sequence: 5, body: .resyncRequest(view: "v")))
        bytes[bytes.count / 2] ^= 0xFF
        guard case let .undecodable(from, reason) = CorosyncInputs.delivery(from: 2, payload: bytes) else {
            Issue.record("a garbled frame must reach the core as undecodable")
            return
        }
        #expect(from == 2)
        #expect(!reason.isEmpty)
    }

    @Test func foreignBytesAreUndecodable() {
        guard case .undecodable(from: 3, _) = CorosyncInputs.delivery(from: 3, payload: Array("hello".utf8)) else {
            Issue.record("bytes that are no frame must reach the core as undecodable")
            return
        }
    }

    @Test func envelopeFromAnotherOriginIsUndecodable() {
        let bytes = EnvelopeCodec.encode(Envelope(origin: 1, sequence: 5, body: .resyncRequest(view: "v")))
        guard case let .undecodable(from, reason) = CorosyncInputs.delivery(from: 2, payload: bytes) else {
            Issue.record("an envelope naming another origin than its CPG sender must not be applied")
            return
        }
        #expect(from == 2)
        #expect(reason.contains("node 1"))
    }

    @Test func goodDeliveryIsDelivered() {
        let envelope = Envelope(origin: 2, sequence: 5, body: .resyncRequest(view: "v"))
        guard case let .delivered(decoded) = CorosyncInputs.delivery(from: 2, payload: EnvelopeCodec.encode(envelope)) else {
            Issue.record("a good envelope is delivered")
            return
        }
        #expect(decoded == envelope)
    }

    // MARK: quorum

    /// `two_node`-style: votequorum says quorate with 1 of 2 nodes; a head count would not.
    @Test func quorumIsVotequorumsVerdictNotAHeadCount() {
        var inputs = CorosyncInputs()
        #expect(inputs.quorum(quorate: true, members: [1]) == nil, "no CPG membership yet: nothing to say")
        let joined = Self.membership(inputs.membership(members: [1], left: [], agentOnly: []))
        #expect(joined?.members == [1] && joined?.quorate == true)
    }

    @Test func nothingIsQuorateBeforeVotequorumSpeaks() {
        var inputs = CorosyncInputs()
        #expect(Self.membership(inputs.membership(members: [1, 2, 3], left: [], agentOnly: []))?.quorate == false)
        #expect(Self.verdict(inputs.quorum(quorate: true, members: [1, 2, 3])) == true, "the verdict arrives: quorate")
    }

    /// A verdict change without a CPG change is a quorum-only input: the core must not start a
    /// sync round of its own for it (rounds start only at points of the agreed order).
    @Test func verdictChangeWithoutCPGChangeIsAQuorumInput() {
        var inputs = CorosyncInputs()
        _ = inputs.quorum(quorate: true, members: [1, 2, 3])
        _ = inputs.membership(members: [1, 2, 3], left: [], agentOnly: [2])
        #expect(Self.verdict(inputs.quorum(quorate: false, members: [1, 2, 3])) == false)
        #expect(inputs.quorum(quorate: false, members: [1, 2, 3]) == nil, "the same verdict again is not news")
        #expect(Self.verdict(inputs.quorum(quorate: true, members: [1, 2, 3])) == true)
    }

    /// The minority side of a partition, CPG change first: votequorum's last verdict (quorate,
    /// from before the split) still lists the nodes that went down, so it does not count.
    @Test func minorityIsNotQuorateWhileVotequorumLagsBehindCPG() {
        var inputs = CorosyncInputs()
        _ = inputs.quorum(quorate: true, members: [1, 2, 3])
        _ = inputs.membership(members: [1, 2, 3], left: [], agentOnly: [])
        let split = Self.membership(inputs.membership(members: [3], left: [1, 2], agentOnly: []))
        #expect(split?.members == [3] && split?.quorate == false)
        // A stale notification, still listing the departed nodes, changes nothing.
        #expect(inputs.quorum(quorate: true, members: [1, 2, 3]) == nil)
        #expect(inputs.quorate == false)
        // votequorum's own verdict for the new membership.
        #expect(inputs.quorum(quorate: false, members: [3]) == nil, "already told: not quorate")
        #expect(inputs.quorate == false)
    }

    /// The majority side, CPG change first: held back until votequorum confirms, then quorate.
    @Test func majorityBecomesQuorateWhenVotequorumConfirms() {
        var inputs = CorosyncInputs()
        _ = inputs.quorum(quorate: true, members: [1, 2, 3])
        _ = inputs.membership(members: [1, 2, 3], left: [], agentOnly: [])
        #expect(Self.membership(inputs.membership(members: [1, 2], left: [3], agentOnly: []))?.quorate == false)
        #expect(Self.verdict(inputs.quorum(quorate: true, members: [1, 2])) == true)
    }

    /// votequorum first, CPG second: the verdict already speaks for the new membership.
    @Test func votequorumFirstNeedsNoWait() {
        var inputs = CorosyncInputs()
        _ = inputs.quorum(quorate: true, members: [1, 2, 3])
        _ = inputs.membership(members: [1, 2, 3], left: [], agentOnly: [])
        #expect(inputs.quorum(quorate: true, members: [1, 2]) == nil, "still quorate: nothing to re-feed")
        #expect(Self.membership(inputs.membership(members: [1, 2], left: [3], agentOnly: []))?.quorate == true)
        // The minority node, votequorum first.
        var minority = CorosyncInputs()
        _ = minority.quorum(quorate: true, members: [1, 2, 3])
        _ = minority.membership(members: [1, 2, 3], left: [], agentOnly: [])
        #expect(Self.verdict(minority.quorum(quorate: false, members: [3])) == false)
        #expect(Self.membership(minority.membership(members: [3], left: [1, 2], agentOnly: []))?.quorate == false)
    }

    /// Only the agent left (its Corosync stays): votequorum's membership did not change.
    @Test func agentOnlyDepartureDoesNotWait() {
        var inputs = CorosyncInputs()
        _ = inputs.quorum(quorate: true, members: [1, 2, 3])
        _ = inputs.membership(members: [1, 2, 3], left: [], agentOnly: [])
        let change = Self.membership(inputs.membership(members: [1, 2], left: [3], agentOnly: [3]))
        #expect(change?.quorate == true && change?.agentOnly == [3])
    }

    @Test func disconnectionForgetsTheVerdict() {
        var inputs = CorosyncInputs()
        _ = inputs.quorum(quorate: true, members: [1, 2, 3])
        _ = inputs.membership(members: [1, 2, 3], left: [], agentOnly: [])
        inputs.disconnected()
        #expect(inputs.quorate == false)
        #expect(Self.membership(inputs.membership(members: [1, 2, 3], left: [], agentOnly: []))?.quorate == false,
                "after a reconnect, quorate only once votequorum says so again")
    }
}
