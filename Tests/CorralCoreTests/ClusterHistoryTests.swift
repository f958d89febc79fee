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
}
