import CorralCore
import Testing

/// Failover staging: survivors create a lost node's guests paused while its fencing is still
/// pending, and only a `startVM` after the fence lets them run. Nothing is ever started early.
@Suite struct FailoverStagingTests {
    /// The directives of one kind a node produced, as VM names.
    static func staged(_ group: Group, _ node: NodeID) -> [String] {
        (group.directives[node] ?? []).compactMap { if case let .stageVM(spec) = $0 { spec.name } else { nil } }
    }

    static func unstaged(_ group: Group, _ node: NodeID) -> [String] {
        (group.directives[node] ?? []).compactMap { if case let .unstageVM(vm) = $0 { vm } else { nil } }
    }

    /// The running group of `CorralNodeTests` after its membership has held for the settle time.
    static func settledGroup() -> Group {
        var group = CorralNodeTests.runningGroup()
        group.advance(by: CorralNode.stagingSettleMs)
        return group
    }

    /// A membership younger than the settle time stages nothing (a cluster still forming
    /// makes the forecast flap); the same membership a moment later does.
    @Test func freshMembershipStagesNothingUntilSettled() {
        var group = CorralNodeTests.runningGroup()
        let host = FailoverForecast.placements(group.nodes[2]!.state, losing: [1])["a"] ?? 2
        group.feed(host, .unreachable([1]))
        #expect(Self.staged(group, host).isEmpty)
        group.advance(by: CorralNode.stagingSettleMs)
        #expect(Self.staged(group, host) == ["a"])
    }

    /// A guest with disks is never staged: QEMU would lock its images and block its real start.
    @Test func guestsWithDisksAreNotStaged() {
        var settings = ClusterSettings()
        settings.recovery = RecoverySettings(leaseMs: 2_000, marginMs: 500, heartbeatMs: 250)
        var state = cluster("n1:8192 n2:8192 n3:8192", settings: settings)
        state.pending(vm("d", 1024, preferred: ["n1"], disks: ["/csv/d.img"]))
        var group = Group(state)
        group.membership([1, 2, 3], quorate: true)
        group.advance(by: 100)
        group.feed(1, .hypervisor(.running("d")))
        group.advance(by: CorralNode.stagingSettleMs)
        for node: NodeID in [2, 3] { group.feed(node, .unreachable([1])) }
        #expect(Self.staged(group, 2).isEmpty && Self.staged(group, 3).isEmpty)
    }

    /// While n1 is being fenced (lease running), the node the recovery will pick stages "a" at
    /// once and starts nothing; once the lease is over its start resumes that same guest.
    @Test func stagedDuringTheLeaseStartedAfterIt() {
        var group = Self.settledGroup()
        group.membership([2, 3], quorate: true)
        group.membership([1], quorate: false)
        let target = FailoverForecast.placements(group.nodes[2]!.state, losing: [1])["a"]
        #expect(target != nil)
        let host = target ?? 2
        let other: NodeID = host == 2 ? 3 : 2
        #expect(Self.staged(group, host) == ["a"])
        #expect(Self.staged(group, other).isEmpty)
        #expect(group.starts(host).isEmpty, "staged is not started: n1's lease still runs")
        group.advance(by: 2_700)
        #expect(group.starts(host) == ["a"])
        group.feed(host, .hypervisor(.running("a")))
        group.settle()
        #expect(group.nodes[host]?.staged.isEmpty == true)
        #expect(Self.unstaged(group, host).isEmpty, "the start consumed the staged guest")
    }

    /// Corosync's link heartbeat says n1 is unreachable before any membership change: the
    /// target stages "a"; when the link comes back, it discards it. Nothing starts either way.
    @Test func unreachablePeerIsStagedAndDiscardedWhenBack() {
        var group = Self.settledGroup()
        let host = FailoverForecast.placements(group.nodes[2]!.state, losing: [1])["a"] ?? 2
        group.feed(host, .unreachable([1]))
        #expect(Self.staged(group, host) == ["a"])
        group.advance(by: 500)
        #expect(Self.staged(group, host) == ["a"], "staged once")
        group.feed(host, .unreachable([]))
        #expect(Self.unstaged(group, host) == ["a"])
        #expect(group.starts(2) + group.starts(3) == [])
        #expect(group.nodes[host]?.staged.isEmpty == true)
    }

    /// Staged on the link heartbeat's word, "a" survives the membership change and its state
    /// sync (the moment it pays off) and is resumed by the start after the fence.
    @Test func stagedBeforeTheMembershipIsKeptThroughItsSync() {
        var group = Self.settledGroup()
        let host = FailoverForecast.placements(group.nodes[2]!.state, losing: [1])["a"] ?? 2
        group.feed(host, .unreachable([1]))
        #expect(Self.staged(group, host) == ["a"])
        group.membership([2, 3], quorate: true)
        group.membership([1], quorate: false)
        group.advance(by: 2_700)
        #expect(Self.staged(group, host) == ["a"], "staged once, never again")
        #expect(Self.unstaged(group, host).isEmpty)
        #expect(group.starts(host) == ["a"])
    }

    /// A node that sees a majority unreachable is itself the one cut off: it stages nothing.
    @Test func isolatedNodeStagesNothing() {
        var group = Self.settledGroup()
        group.feed(3, .unreachable([1, 2]))
        #expect(Self.staged(group, 3).isEmpty)
    }

    /// Losing quorum discards what was staged: a minority never runs a failover.
    @Test func stagedGuestsAreDiscardedWithoutQuorum() {
        var group = Self.settledGroup()
        let host = FailoverForecast.placements(group.nodes[2]!.state, losing: [1])["a"] ?? 2
        group.feed(host, .unreachable([1]))
        #expect(Self.staged(group, host) == ["a"])
        group.membership([host], quorate: false)
        #expect(Self.unstaged(group, host) == ["a"])
        #expect(group.starts(host).isEmpty)
    }

    /// The forecast is the coordinator's own recovery: highest priority first, anti-affinity and
    /// capacity honoured, and only VMs of the lost nodes.
    @Test func forecastMatchesTheRecovery() {
        var state = cluster("n1:4096 n2:2048 n3:2048")
        state.run(vm("big", 1536), on: "n1")
        state.run(vm("small", 1024), on: "n1")
        state.run(vm("other", 512), on: "n2")
        let forecast = FailoverForecast.placements(state, losing: [state.id("n1")])
        #expect(Set(forecast.keys) == ["big", "small"])
        var fenced = state
        fenced.lose("n1")
        fenced.must(.declareFenced(state.id("n1"), method: "test"))
        var placed: [String: NodeID] = [:]
        for command in Coordinator.recovery(fenced) { if case let .place(vm, node) = command { placed[vm] = node } }
        #expect(forecast == placed)
        #expect(state.nodes[state.id("n1")]?.health == .up, "the forecast changes nothing")
    }
}
