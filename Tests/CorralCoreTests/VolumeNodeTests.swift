import CorralCore
import Testing

/// The nodes' side of volumes: who runs a disk operation, its answer through the agreed order,
/// the handoff on request, and the re-run after the coordinator failed.
@Suite struct VolumeNodeTests {
    static let free = VolumeProbe(reachable: true, freeMiB: 10_000, capacityMiB: 20_000)

    /// Three synced nodes (2 s lease) with a shared volume `csv` that every node has looked at.
    static func group() -> Group {
        var settings = ClusterSettings()
        settings.recovery = RecoverySettings(leaseMs: 2_000, marginMs: 500, heartbeatMs: 250)
        var group = Group(cluster("n1:8192 n2:8192 n3:8192", settings: settings))
        group.membership([1, 2, 3], quorate: true)
        group.feed(2, .request(id: 1, .addVolume(name: "csv", path: "/csv", kind: .shared, node: nil), whatIf: false))
        group.settle()
        group.advance(by: 100)
        for node in group.ids {
            #expect(group.directives[node]?.contains(.probeVolume("csv", path: "/csv")) == true, "every node looks at a new shared volume")
            group.feed(node, .storage(.probed(volume: "csv", free)))
        }
        group.settle()
        return group
    }

    static func operations(_ group: Group, on node: NodeID) -> [Int] {
        (group.directives[node] ?? []).compactMap { if case let .runDiskOperation(op, _) = $0 { op.id } else { nil } }
    }

    @Test func theCoordinatorRunsTheOperationAndEveryNodeRecordsIt() {
        var group = Self.group()
        let coordinator = group.nodes[1]!.state.volumes["csv"]!.coordinator!
        #expect(group.nodes[1]!.state.volumes["csv"]!.freeMiB == 10_000)
        group.feed(3, .request(id: 2, .createDisk(volume: "csv", disk: "d1", sizeMiB: 1_024, format: .qcow2), whatIf: false))
        group.settle()
        group.advance(by: 100)
        #expect(Self.operations(group, on: coordinator) == [1])
        #expect(group.ids.filter { $0 != coordinator }.allSatisfy { Self.operations(group, on: $0).isEmpty })
        let op = DiskOperation(id: 1, volume: "csv", disk: "d1", action: .create(sizeMiB: 1_024, format: .qcow2))
        group.feed(coordinator, .storage(.operationFinished(op, .succeeded(Self.free))))
        group.settle()
        for node in group.ids {
            #expect(group.nodes[node]!.state.volumes["csv"]!.disks == [VolumeDisk(name: "d1", format: .qcow2, sizeMiB: 1_024)])
        }
        #expect(Set(group.digests).count == 1)
    }

    /// `volume move` while an operation runs: the role moves only after its answer, so the
    /// new coordinator never runs it a second time.
    @Test func handoffWaitsForTheRunningOperation() {
        var group = Self.group()
        let old = group.nodes[1]!.state.volumes["csv"]!.coordinator!
        let new: NodeID = old == 3 ? 2 : 3
        group.feed(1, .request(id: 2, .createDisk(volume: "csv", disk: "d1", sizeMiB: 64, format: .raw), whatIf: false))
        group.settle()
        group.advance(by: 100)
        #expect(Self.operations(group, on: old) == [1])
        group.feed(1, .request(id: 3, .moveVolume("csv", to: "n\(new)"), whatIf: false))
        group.settle()
        group.advance(by: 500)
        #expect(group.nodes[1]!.state.volumes["csv"]!.coordinator == old, "not while operation 1 runs there")
        let op = DiskOperation(id: 1, volume: "csv", disk: "d1", action: .create(sizeMiB: 64, format: .raw))
        group.feed(old, .storage(.operationFinished(op, .succeeded(Self.free))))
        group.settle()
        group.advance(by: 100)
        #expect(group.nodes[1]!.state.volumes["csv"]!.coordinator == new)
        #expect(group.nodes[1]!.state.volumes["csv"]!.disks.map(\.name) == ["d1"])
        #expect(Self.operations(group, on: new).isEmpty, "operation 1 is not run again")
    }

    /// The coordinator dies before answering: once it is fenced (its lease over), the new
    /// coordinator runs the same operation (same id: the shell's checks make it idempotent).
    @Test func anUnansweredOperationRunsAgainAfterFailover() {
        var group = Self.group()
        let old = group.nodes[1]!.state.volumes["csv"]!.coordinator!
        let rest = group.ids.filter { $0 != old }
        group.feed(rest[0], .request(id: 2, .createDisk(volume: "csv", disk: "d1", sizeMiB: 64, format: .raw), whatIf: false))
        group.settle()
        group.advance(by: 100)
        #expect(Self.operations(group, on: old) == [1])
        group.membership(rest, quorate: true)
        group.membership([old], quorate: false)
        group.advance(by: 1_000)
        #expect(rest.allSatisfy { Self.operations(group, on: $0).isEmpty }, "nothing runs while the old coordinator may still write")
        group.advance(by: 3_000)
        let new = group.nodes[rest[0]]!.state.volumes["csv"]!.coordinator!
        #expect(rest.contains(new))
        #expect(Self.operations(group, on: new) == [1])
    }
}
