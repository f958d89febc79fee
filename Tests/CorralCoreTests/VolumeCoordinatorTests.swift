import CorralCore
import Testing

/// One coordinator per shared volume: spread evenly, replaced only after its node is fenced,
/// handed over on request only when no operation runs on it, and no queued operation is lost.
@Suite struct VolumeCoordinatorTests {
    static func threeVolumes() -> ClusterState {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        for name in ["a", "b", "c"] { state.must(.addVolume(Volume(name: name, path: "/\(name)", kind: .shared, owner: nil))) }
        state.coordinate()
        return state
    }

    static func coordinators(_ state: ClusterState) -> [String] {
        state.sortedVolumes.map { "\($0.name)@\(state.nodeName($0.coordinator))" }
    }

    @Test func rolesSpreadOverTheNodes() {
        var state = Self.threeVolumes()
        #expect(Self.coordinators(state) == ["a@n1", "b@n2", "c@n3"])
        state.must(.addVolume(Volume(name: "d", path: "/d", kind: .shared, owner: nil)))
        state.coordinate()
        #expect(Self.coordinators(state) == ["a@n1", "b@n2", "c@n3", "d@n1"])
    }

    /// The coordinator leaves in the middle of an operation: nothing moves while it is being
    /// fenced (it might still be writing), then the least busy node takes the role and the
    /// operation is still queued for it.
    @Test func failoverWaitsForFencingAndKeepsTheQueue() {
        var state = Self.threeVolumes()
        state.must(.volumeProbed("b", node: state.id("n2"), VolumeProbe(reachable: true, freeMiB: 5_000, capacityMiB: 9_000)))
        state.must(.queueDiskOperation(volume: "b", disk: "d1", .create(sizeMiB: 100, format: .raw)))
        state.lose("n2")
        #expect(state.nodes[state.id("n2")]?.health == .fencing, "a coordinator with work pending is fenced, like a node with VMs")
        state.coordinate()
        #expect(Self.coordinators(state) == ["a@n1", "b@n2", "c@n3"])
        state.must(.declareFenced(state.id("n2"), method: "test"))
        state.coordinate()
        #expect(Self.coordinators(state) == ["a@n1", "b@n1", "c@n3"])
        #expect(state.volumes["b"]?.operations.map(\.disk) == ["d1"])
    }

    /// A coordinator with nothing pending that leaves is replaced at once; when its node comes
    /// back, one role moves back to it (a handoff).
    @Test func idleCoordinatorIsReplacedAndRebalancedBack() {
        var state = Self.threeVolumes()
        state.lose("n3")
        #expect(state.nodes[state.id("n3")]?.health == .down)
        state.coordinate()
        #expect(Self.coordinators(state) == ["a@n1", "b@n2", "c@n1"])
        state.applyMembership(state.sortedNodes.map(\.id))
        let issued = state.coordinate()
        #expect(issued.contains(.moveVolumeCoordinator("a", to: state.id("n3"))))
        #expect(state.volumes["a"]?.handoffTo == state.id("n3"), "the current coordinator hands it over itself")
    }

    /// `volume move` asks for a handoff; a handoff to a node that went away is called off.
    @Test func moveOnRequestIsAHandoff() {
        var state = Self.threeVolumes()
        state.must(.moveVolumeCoordinator("a", to: state.id("n2")))
        #expect(state.volumes["a"]?.coordinator == state.id("n1") && state.volumes["a"]?.handoffTo == state.id("n2"))
        #expect(state.refusal(of: .moveVolumeCoordinator("a", to: state.id("n2"))) == nil)
        state.lose("n2")
        state.coordinate()
        #expect(state.volumes["a"]?.coordinator == state.id("n1") && state.volumes["a"]?.handoffTo == nil)
    }
}

/// A node that cannot reach a volume any more: its VMs on that volume move to nodes that see
/// it, it is not chosen for them, and it stops coordinating the volume.
@Suite struct StorageEvacuationTests {
    @Test func vmsLeaveANodeThatLostTheirVolume() {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.must(.addVolume(Volume(name: "csv", path: "/csv", kind: .shared, owner: nil)))
        state.coordinate()
        state.run(vm("db", 512, disks: ["/csv/db.img"]), on: "n1")
        state.run(vm("plain", 512), on: "n1")
        state.must(.volumeProbed("csv", node: state.id("n1"), VolumeProbe(reachable: false, freeMiB: 0, capacityMiB: 0)))
        #expect(state.volumes["csv"]?.unreachableFrom == [state.id("n1")])
        let issued = state.coordinate()
        #expect(issued.contains(.queueMigration(vm: "db", to: state.id("n2"), purpose: .storage)))
        #expect(!issued.contains { if case .queueMigration("plain", _, _) = $0 { true } else { false } }, "a VM without volumes stays")
        #expect(state.volumes["csv"]?.coordinator == state.id("n2"), "a coordinator that lost the volume is replaced")
        #expect(!state.storageAllows(state.vms["db"]!.spec, on: state.id("n1")), "n1 is not chosen for db")
    }
}
