import CorralCore
import Testing

/// A node instance in and out of quorum (DESIGN §3 rule 4): a minority partition never acts,
/// refuses requests, and stops its VMs; the majority restarts them only after the lease.
@Suite struct CorralNodeTests {
    /// Three synced nodes with a 2 s lease and 0.5 s margin; the coordinator has placed "a" on
    /// n1 and n1's hypervisor runs it.
    static func runningGroup(fenceAgent: Bool = false) -> Group {
        var settings = ClusterSettings()
        settings.recovery = RecoverySettings(leaseMs: 2_000, marginMs: 500, heartbeatMs: 250, fenceAgent: fenceAgent)
        var state = cluster("n1:8192 n2:8192 n3:8192", settings: settings)
        state.pending(vm("a", 1024, preferred: ["n1"]))
        var group = Group(state)
        group.membership([1, 2, 3], quorate: true)
        group.advance(by: 100)
        #expect(group.starts(1) == ["a"])
        group.feed(1, .hypervisor(.running("a")))
        group.settle()
        #expect(group.nodes[1]?.state.vms["a"]?.state == .running)
        return group
    }

    /// Cut off alone, n1 refuses every request with "no quorum" at once, keeps its VM while
    /// its lease lasts (a partition that heals in time costs nothing), and stops it before the
    /// lease ends (2000 ms lease, 500 ms guard).
    @Test func minorityStopsItsVMsAndRefusesRequests() {
        var group = Self.runningGroup()
        #expect(group.stops(1).isEmpty)
        group.membership([2, 3], quorate: true)
        group.membership([1], quorate: false)
        #expect(group.stops(1).isEmpty)
        group.advance(by: 1_000)
        #expect(group.stops(1).isEmpty)
        group.advance(by: 1_000)
        #expect(group.stops(1) == ["a"])
        #expect((group.directives[1] ?? []).contains(.stopVM("a", reason: "self-fence: no quorum")))

        let replies = group.feed(1, .request(id: 7, .startVM("a"), whatIf: false))
        #expect(replies.contains(.reply(id: 7, .refused("no quorum: this node's partition has 1 of 3 votes"))))
        #expect(group.undelivered == 0, "a refused request broadcasts nothing")
        #expect(group.nodes[1]?.canAct == false)
    }

    /// The majority restarts the minority's VM only once the minority's lease plus the margin
    /// has passed (2000 + 500 ms here), never before.
    @Test func majorityWaitsForTheLeaseBeforeRestarting() {
        var group = Self.runningGroup()
        group.membership([2, 3], quorate: true)
        group.membership([1], quorate: false)
        group.advance(by: 2_300)
        #expect(group.starts(2) + group.starts(3) == [])
        #expect(group.nodes[2]?.state.nodes[1]?.health == .fencing)
        group.advance(by: 400)
        #expect(group.starts(2) + group.starts(3) == ["a"])
        #expect(group.nodes[2]?.state.nodes[1]?.health == .fenced)
    }

    /// With a fence agent, the coordinator runs it the moment a node leaves Corosync — but
    /// never against a node whose agent alone left (a restart): that one's lease covers it.
    @Test(arguments: [false, true])
    func fenceAgentOnlyForNodesThatLeftCorosync(agentOnly: Bool) {
        var group = Self.runningGroup(fenceAgent: true)
        group.membership([2, 3], quorate: true, agentOnly: agentOnly ? [1] : [])
        let asked = (group.directives[2] ?? []).contains(.runFenceAgent(1, name: "n1", attempt: 1))
        #expect(asked == !agentOnly)
    }

    /// A what-if request answers with a plan, broadcasts nothing and changes nothing.
    @Test func whatIfChangesNothing() {
        var group = Self.runningGroup()
        let before = group.digests
        let out = group.feed(2, .request(id: 9, .drainNode("n1"), whatIf: true))
        guard case let .reply(9, .plan(lines))? = out.first(where: { if case .reply = $0 { true } else { false } }) else {
            Issue.record("no plan reply: \(out)")
            return
        }
        #expect(lines.first == "would apply: drain n1")
        #expect(group.undelivered == 0)
        group.settle()
        #expect(group.digests == before)
        #expect(group.nodes[1]?.state.nodes[1]?.admin == .active)
    }

    /// A real request goes through the group and is answered once it is applied.
    @Test func requestIsAnsweredWhenApplied() {
        var group = Self.runningGroup()
        group.feed(3, .request(id: 11, .pauseNode("n2"), whatIf: false))
        #expect(group.replies(3)[11] == nil, "not answered before it is delivered")
        group.settle()
        #expect(group.replies(3)[11] == .done("pause n2"))
        #expect(Set(group.digests).count == 1)
        #expect(group.nodes[1]?.state.nodes[2]?.admin == .paused)
    }
}
