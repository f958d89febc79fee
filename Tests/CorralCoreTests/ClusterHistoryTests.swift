import CorralCore
import Testing

/// `corral events` lines derived from two states: a failover names the fenced node it came
/// from, migrations say how they ended, an unchanged state says nothing.
@Suite struct ClusterHistoryTests {
    @Test func aFailoverIsToldAsSuch() {
        var group = SafetyHardeningTests.runningGroup()
        let before = group.nodes[2]!.state
        #expect(ClusterHistory.events(from: before, to: before).isEmpty)
        group.membership([1], quorate: false)
        group.membership([2, 3], quorate: true)
        group.advance(by: 3_000)
        group.settle()
        guard let node = group.nodes[2]!.state.vms["a"]?.node else { Issue.record("a not placed"); return }
        group.feed(node, .hypervisor(.running("a")))
        group.settle()
        let after = group.nodes[2]!.state
        let lines = ClusterHistory.events(from: before, to: after)
        #expect(lines.contains(ClusterEvent(.node, "n1", "up → fenced")), "\(lines)")
        let host = after.nodeName(node)
        #expect(lines.contains(ClusterEvent(.vm, "a", "running → running on \(host) (failed over from n1)")), "\(lines)")
    }

    @Test func aMigrationSaysHowItEnded() {
        var group = SafetyHardeningTests.runningGroup()
        let before = group.nodes[1]!.state
        group.feed(2, .request(id: 1, .moveVM("a", to: "n2"), whatIf: false))
        group.settle()
        let queued = group.nodes[1]!.state
        let started = ClusterHistory.events(from: before, to: queued).filter { $0.kind == .migration }
        #expect(started.map(\.message).allSatisfy { $0.hasSuffix("a n1 → n2 (move)") } && started.count == 1, "\(started)")
        group.advance(by: 200)
        group.feed(1, .hypervisor(.migrationFailed(job: 1, reason: "connection refused")))
        group.settle()
        let failed = ClusterHistory.events(from: queued, to: group.nodes[1]!.state).filter { $0.kind == .migration }
        #expect(failed == [ClusterEvent(.migration, "migration 1", "failed: a n1 → n2: connection refused")], "\(failed)")
    }

    /// A patch run's history: started, each node's steps, how it ended (collected step by step,
    /// as the agent records it).
    @Test func aPatchRunIsToldStepByStep() {
        var settings = ClusterSettings()
        settings.recovery = RecoverySettings(leaseMs: 2_000, marginMs: 500, heartbeatMs: 250, fenceAgent: false)
        var group = Group(cluster("n1:8192 n2:8192 n3:8192", settings: settings))
        group.membership([1, 2, 3], quorate: true)
        group.advance(by: 300)
        var lines: [ClusterEvent] = []
        var seen = group.nodes[2]!.state
        group.feed(1, .request(id: 1, .startPatchRun(PatchRequest(PatchOptions(hook: "patch"), order: ["n1", "n2"])), whatIf: false))
        group.settle()
        var answered: Set<String> = []
        for _ in 0..<100 where group.nodes[2]!.state.patchRun?.state == .running {
            let before = seen.digest
            PatchRunDriverTests.runHooks(&group, answered: &answered) { $0.nodes[2]!.state.digest != before }
            lines += ClusterHistory.events(from: seen, to: group.nodes[2]!.state).filter { $0.kind == .patch }
            seen = group.nodes[2]!.state
        }
        #expect(lines.first == ClusterEvent(.patch, "patch run 1", "started: n1, n2"), "\(lines)")
        #expect(lines.contains(ClusterEvent(.patch, "patch run 1", "n1 done (attempt 1)")), "\(lines)")
        #expect(lines.last?.message.hasPrefix("finished") == true, "\(lines)")
    }
}
