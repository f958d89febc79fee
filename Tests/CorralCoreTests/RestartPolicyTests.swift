import CorralCore
import Testing

/// The restart policy (issue 5 §3): a crashed HA VM restarts where it crashed while its
/// in-place budget lasts, then elsewhere, and is left `failed` after too many crashes — no
/// restart storm. A whole crash window without a crash forgives the count.
@Suite struct RestartPolicyTests {
    /// n1..n3 with "app" running on n1; 2 restarts in place, failed after 4 crashes.
    static func crashingCluster() -> ClusterState {
        var settings = ClusterSettings()
        settings.recovery.restartsInPlace = 2
        settings.recovery.maxCrashes = 4
        var state = cluster("n1:4096 n2:4096 n3:4096", settings: settings)
        state.run(vm("app", 1024), on: "n1")
        return state
    }

    /// Crashes the VM where it runs, lets the coordinator place it, and says where it went.
    static func crashAndRecover(_ state: inout ClusterState) -> String {
        let node = state.vms["app"]!.node!
        state.must(.vmStopped(vm: "app", on: node, crashed: true))
        let placed = state.coordinate().placements(in: state)
        if let id = state.vms["app"]?.node { state.must(.vmStarted(vm: "app", on: id, leaseTokens: [])) }
        return placed.first ?? "-"
    }

    @Test func inPlaceThenElsewhereThenFailed() {
        var state = Self.crashingCluster()
        #expect(Self.crashAndRecover(&state) == "app@n1", "first crash: restarted in place")
        #expect(Self.crashAndRecover(&state) == "app@n1", "second crash: still in place")
        let third = Self.crashAndRecover(&state)
        #expect(third == "app@n2" || third == "app@n3", "third crash: moved off n1, went to \(third)")
        #expect(Self.crashAndRecover(&state) != "-", "fourth crash: restarted once more")
        #expect(Self.crashAndRecover(&state) == "-", "fifth crash: not restarted")
        #expect(state.vms["app"]?.state == .failed)
        #expect(state.vms["app"]?.reason.contains("crashed 5 times") == true)
    }

    /// A crash window of stable running forgives the crashes: the next crash restarts in place again.
    @Test func aStableWindowForgivesCrashes() {
        var state = Self.crashingCluster()
        _ = Self.crashAndRecover(&state)
        _ = Self.crashAndRecover(&state)
        #expect(state.vms["app"]?.crashCount == 2)
        let commands = state.coordinate(.init(now: 0, stableVMs: ["app"]))
        #expect(commands.contains(.forgiveCrashes(vm: "app")))
        #expect(state.vms["app"]?.crashCount == 0)
        #expect(Self.crashAndRecover(&state) == "app@n1")
    }

    /// The window is counted on the coordinator from when it first sees the crashed VM running.
    @Test func forgivenOnlyAfterAWholeWindow() {
        var settings = ClusterSettings()
        settings.recovery = RecoverySettings(leaseMs: 2_000, marginMs: 500, heartbeatMs: 250, crashWindowMs: 60_000)
        var state = cluster("n1:4096 n2:4096 n3:4096", settings: settings)
        state.run(vm("app", 1024, preferred: ["n1"]), on: "n1")
        state.must(.vmStopped(vm: "app", on: state.id("n1"), crashed: true))
        var group = Group(state)
        group.membership([1, 2, 3], quorate: true)
        group.advance(by: 500)
        group.feed(1, .hypervisor(.running("app")))
        group.settle()
        #expect(group.nodes[1]?.state.vms["app"]?.crashCount == 1)
        group.advance(by: 50_000)
        #expect(group.nodes[1]?.state.vms["app"]?.crashCount == 1)
        group.advance(by: 11_000)
        #expect(group.nodes[1]?.state.vms["app"]?.crashCount == 0)
    }
}
