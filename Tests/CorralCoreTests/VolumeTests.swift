import CorralCore
import Foundation
import Testing

/// Volumes in the replicated state: what may be added, removed and queued on them, with one
/// specific refusal each that changes nothing, and how their VMs are placed.
@Suite struct VolumeTests {
    static let free = VolumeProbe(reachable: true, freeMiB: 10_000, capacityMiB: 20_000)

    /// Three nodes and a shared volume `csv` at /csv whose coordinator has reported 10000 MiB free.
    static func withVolume() -> ClusterState {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.must(.addVolume(Volume(name: "csv", path: "/csv", kind: .shared, owner: nil)))
        state.coordinate()
        state.must(.volumeProbed("csv", node: state.volumes["csv"]!.coordinator!, free))
        return state
    }

    /// Runs a queued operation to success the way the coordinator reports it.
    static func finish(_ state: inout ClusterState, volume: String = "csv") {
        let op = state.volumes[volume]!.operations[0]
        state.must(.diskOperationFinished(id: op.id, volume: volume, .succeeded(free)))
    }

    static func request(_ r: OperatorRequest, _ state: ClusterState) -> String? {
        if case let .failure(refusal) = RequestPlanner.command(for: r, in: state) { return refusal.message }
        return nil
    }

    @Test func badVolumesAreRefusedByName() {
        let state = Self.withVolume()
        #expect(Self.request(.addVolume(name: "csv", path: "/other", kind: .shared, node: nil), state) == "a volume named csv already exists")
        #expect(Self.request(.addVolume(name: "v2", path: "data", kind: .shared, node: nil), state)
                == "volume path data must be an absolute path other than /")
        #expect(Self.request(.addVolume(name: "v2", path: "/csv/sub", kind: .shared, node: nil), state)
                == "volume path /csv/sub overlaps volume csv (/csv)")
        #expect(Self.request(.addVolume(name: "v2", path: "/local", kind: .local, node: nil), state)
                == "a local volume needs the node whose directory it is (--node NAME)")
        #expect(Self.request(.addVolume(name: "v2", path: "/local", kind: .local, node: "n9"), state) == "no node named n9")
        #expect(Self.request(.addVolume(name: "v 2", path: "/v2", kind: .shared, node: nil), state)
                == "volume name v 2 contains ' '; use letters, digits, '-', '_' and '.'")
        #expect(Self.request(.addVolume(name: "v2", path: "/v2", kind: .local, node: "n2"), state) == nil)
    }

    /// A create waits for the coordinator's look at the volume, and is refused, with the free
    /// space, when it does not fit (counting creates already queued).
    @Test func diskCreationChecksFreeSpace() {
        var state = cluster("n1:8192 n2:8192")
        state.must(.addVolume(Volume(name: "csv", path: "/csv", kind: .shared, owner: nil)))
        state.coordinate()
        let create = OperatorRequest.createDisk(volume: "csv", disk: "d1", sizeMiB: 4_000, format: .qcow2)
        #expect(Self.request(create, state) == "free space of volume csv is not known yet (its coordinator has not looked at it); retry")
        state.must(.volumeProbed("csv", node: state.volumes["csv"]!.coordinator!, Self.free))
        #expect(Self.request(.createDisk(volume: "csv", disk: "big", sizeMiB: 10_001, format: .raw), state)
                == "volume csv has 10000 MiB free; csv/big needs 10001 MiB more")
        #expect(Self.request(.createDisk(volume: "nope", disk: "d1", sizeMiB: 1, format: .raw), state) == "no volume named nope")
        state.must(.queueDiskOperation(volume: "csv", disk: "d1", .create(sizeMiB: 4_000, format: .qcow2)))
        #expect(Self.request(.createDisk(volume: "csv", disk: "d2", sizeMiB: 7_000, format: .raw), state)
                == "volume csv has 6000 MiB free after pending operations; csv/d2 needs 7000 MiB more")
        #expect(Self.request(create, state) == "disk csv/d1 already has an operation pending; wait for it")
        let before = state
        #expect(state.apply(.queueDiskOperation(volume: "csv", disk: "d2", .create(sizeMiB: 7_000, format: .raw)))
                == .refused("volume csv has 6000 MiB free after pending operations; csv/d2 needs 7000 MiB more"))
        #expect(state == before, "a refused command changes nothing")
    }

    /// Create, resize and delete through the queue; a failure is recorded for the operator and
    /// leaves the disk as it was.
    @Test func diskLifecycle() throws {
        var state = Self.withVolume()
        state.must(.queueDiskOperation(volume: "csv", disk: "d1", .create(sizeMiB: 1_024, format: .raw)))
        Self.finish(&state)
        #expect(state.volumes["csv"]!.disks == [VolumeDisk(name: "d1", format: .raw, sizeMiB: 1_024)])
        #expect(Self.request(.createDisk(volume: "csv", disk: "d1", sizeMiB: 1, format: .raw), state) == "disk csv/d1 already exists")
        #expect(Self.request(.resizeDisk(volume: "csv", disk: "d1", sizeMiB: 512), state)
                == "disk csv/d1 is 1024 MiB; a resize only grows it (shrinking loses the guest's data), not to 512 MiB")
        state.must(.queueDiskOperation(volume: "csv", disk: "d1", .resize(sizeMiB: 2_048, format: .raw)))
        let op = state.volumes["csv"]!.operations[0].id
        state.must(.diskOperationFinished(id: op, volume: "csv", .failed("qemu-img resize failed")))
        #expect(state.volumes["csv"]!.disks[0].sizeMiB == 1_024)
        #expect(state.volumes["csv"]!.failures == ["d1: resize failed: qemu-img resize failed"])
        #expect(state.apply(.diskOperationFinished(id: op, volume: "csv", .succeeded(Self.free)))
                == .refused("disk operation \(op) is not pending on volume csv"), "a second answer is ignored")
        state.must(.queueDiskOperation(volume: "csv", disk: "d1", .resize(sizeMiB: 2_048, format: .raw)))
        Self.finish(&state)
        #expect(state.volumes["csv"]!.disks[0].sizeMiB == 2_048)
        #expect(state.volumes["csv"]!.failures.isEmpty)

        state.pending(vm("db", 512, disks: ["/csv/d1"]))
        #expect(Self.request(.deleteDisk(volume: "csv", disk: "d1"), state) == "disk csv/d1 belongs to VM db; remove the VM first")
        #expect(Self.request(.removeVolume("csv"), state) == "volume csv still holds disks d1; delete them first")
        state.must(.removeVM("db"))
        state.must(.queueDiskOperation(volume: "csv", disk: "d1", .delete))
        Self.finish(&state)
        #expect(state.volumes["csv"]!.disks.isEmpty)
        state.must(.removeVolume("csv"))
        #expect(state.volumes.isEmpty)
    }

    /// `vm add --disks csv/d1` names a volume disk; it becomes the image's path.
    @Test func vmDisksNameVolumeDisks() throws {
        var state = Self.withVolume()
        #expect(Self.request(.addVM(vm("db", 512, disks: ["csv/d1"]), start: true), state) == "no disk csv/d1 (corral disk list csv)")
        state.must(.queueDiskOperation(volume: "csv", disk: "d1", .create(sizeMiB: 64, format: .raw)))
        Self.finish(&state)
        state.must(.queueDiskOperation(volume: "csv", disk: "d2", .create(sizeMiB: 64, format: .qcow2)))
        Self.finish(&state)
        let request = OperatorRequest.addVM(vm("db", 512, disks: ["csv/d1", "/csv/d2", "/elsewhere/d3"]), start: true)
        guard case let .success(.addVM(spec, _, _)) = RequestPlanner.command(for: request, in: state) else {
            Issue.record("vm add was refused")
            return
        }
        #expect(spec.disks == ["/csv/d1", "/csv/d2", "/elsewhere/d3"])
        #expect(spec.diskFormats == [.raw, .qcow2, .raw], "QEMU is told each format, never left to guess")
        guard case let .success(.addVM(rawOnly, _, _)) = RequestPlanner.command(for: .addVM(vm("web", 512, disks: ["csv/d1"]), start: true), in: state) else {
            Issue.record("vm add was refused")
            return
        }
        #expect(rawOnly.diskFormats == nil, "raw-only VMs are written as before")
    }

    /// A VM on a node's local volume runs only there: placed there, never moved or failed over
    /// elsewhere, and the reason says so.
    @Test func localVolumeVMsStayOnTheirNode() {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.must(.addVolume(Volume(name: "n2disk", path: "/var/lib/n2", kind: .local, owner: state.id("n2"))))
        #expect(state.volumes["n2disk"]!.coordinator == state.id("n2"))
        state.pending(vm("web", 512, disks: ["/var/lib/n2/web.img"]))
        let placed = state.coordinate().placements(in: state)
        #expect(placed == ["web@n2"])
        state.must(.vmStarted(vm: "web", on: state.id("n2"), leaseTokens: state.tokens(of: "web")))
        #expect(Self.request(.moveVM("web", to: "n1"), state) == "n1 does not see every volume of VM web (n2disk)")
        #expect(state.refusal(of: .queueMigration(vm: "web", to: state.id("n3"), purpose: .move)) == "n3 does not see every volume of VM web")
        state.must(.stopVM("web"))
        state.must(.vmStopped(vm: "web", on: state.id("n2"), crashed: false))
        state.must(.pauseNode(state.id("n2")))
        state.must(.startVM("web"))
        state.coordinate()
        #expect(state.vms["web"]?.state == .pending)
        #expect(state.vms["web"]?.reason == "no node that takes VMs sees volume n2disk online")
    }

    /// Maintenance stops nothing unless forced, and says which VMs would stop.
    @Test func maintenanceNeedsForceWhileVMsRun() {
        var state = Self.withVolume()
        state.run(vm("db", 512, disks: ["/csv/db.img"]), on: "n1")
        state.run(vm("web", 512, disks: ["/csv/web.img"]), on: "n2")
        let before = state
        #expect(state.apply(.setVolumeState("csv", .maintenance, force: false))
                == .refused("maintenance of volume csv would stop db, web; nothing was changed (move them, or add --force to stop them)"))
        #expect(state == before)
        state.must(.setVolumeState("csv", .maintenance, force: true))
        #expect(state.vms["db"]?.state == .stopping && state.vms["web"]?.state == .stopping)
        #expect(Self.request(.createDisk(volume: "csv", disk: "d9", sizeMiB: 1, format: .raw), state) == "volume csv is maintenance")
        state.must(.setVolumeState("csv", .online, force: false))
    }

    /// A state without volumes is written exactly as before volumes existed (same bytes, same
    /// digest), and such a state still reads.
    @Test func stateWithoutVolumesKeepsItsEncoding() throws {
        let state = cluster("n1:8192 n2:8192")
        let bytes = try JSONEncoder().encode(state)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("volumes") && !text.contains("nextOperationID"))
        #expect(try JSONDecoder().decode(ClusterState.self, from: bytes) == state)
        let with = Self.withVolume()
        #expect(try JSONDecoder().decode(ClusterState.self, from: JSONEncoder().encode(with)) == with)
    }
}
