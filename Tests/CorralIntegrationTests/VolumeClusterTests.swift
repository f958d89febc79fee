import CorralAgent
import CorralTestbed
import Foundation
import Testing

/// Volumes on a real 3-node cluster (record-only hypervisor, cluster id 8): disks made, grown
/// and deleted with qemu-img by the volume's coordinator, refusals that change nothing, the
/// coordinator role moved on request and after its node was killed, a node-local volume.
@Suite(.serialized, .enabled(if: ClusterTesting.canRun && FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img"),
                             "needs root, a built corrald and qemu-img"))
struct VolumeClusterTests {
    static let base = "/run/corral-test-volumes"

    static func volume(_ cluster: LocalCluster, _ i: Int, _ name: String) -> StatusReport.VolumeRow? {
        cluster.status(i)?.volumes?.first { $0.name == name }
    }

    /// `qemu-img info` of an image: (format, virtual size in MiB), nil if there is none.
    static func image(_ path: String) -> (format: String, sizeMiB: Int)? {
        let result = CommandRunner.run(["/usr/bin/qemu-img", "info", "--output=json", "-U", path])
        guard result.status == 0, let object = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
              let format = object["format"] as? String, let size = object["virtual-size"] as? Int else { return nil }
        return (format, size >> 20)
    }

    /// Runs `corral ARGS…` on node `i`; records an issue unless it exits with `status`.
    @discardableResult
    static func corral(_ cluster: LocalCluster, _ i: Int, expect status: Int32, _ arguments: String...,
                       sourceLocation: SourceLocation = #_sourceLocation) -> String {
        let result = cluster.exec(i, [LocalCluster.binaries + "/corral"] + arguments)
        #expect(result.status == status, "corral \(arguments.joined(separator: " ")): \(result.output)", sourceLocation: sourceLocation)
        return result.output
    }

    @Test func sharedVolumeDisksAndCoordinatorFailover() throws {
        try ClusterTesting.withCluster(id: 8, base: Self.base, nodes: 3, hypervisor: .none) { cluster in
            let directory = cluster.base + "/shared/vol1"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            Self.corral(cluster, 1, expect: 0, "volume", "add", "vol1", "--path", directory, "--shared")
            try cluster.waitUntil("the coordinator of vol1 has looked at it", seconds: 20) {
                (Self.volume(cluster, 3, "vol1")?.capacityMiB ?? 0) > 0
            }
            let added = try #require(Self.volume(cluster, 2, "vol1"))
            #expect(added.seenBy == ["node1", "node2", "node3"])

            // Disks are made by the coordinator with qemu-img; the CLI waits for the outcome.
            Self.corral(cluster, 2, expect: 0, "disk", "create", "vol1/d1", "--size", "64M", "--format", "qcow2")
            Self.corral(cluster, 3, expect: 0, "disk", "create", "vol1/d2", "--size", "32")
            #expect(Self.image(directory + "/d1")?.format == "qcow2" && Self.image(directory + "/d1")?.sizeMiB == 64)
            #expect(Self.image(directory + "/d2")?.format == "raw" && Self.image(directory + "/d2")?.sizeMiB == 32)
            Self.corral(cluster, 1, expect: 0, "disk", "resize", "vol1/d1", "--size", "128M")
            #expect(Self.image(directory + "/d1")?.sizeMiB == 128)

            // Bad requests: a specific refusal, exit status 1, nothing changed.
            let before = try #require(cluster.status(1)).digest
            #expect(Self.corral(cluster, 1, expect: 1, "disk", "create", "vol1/d1", "--size", "1M").contains("disk vol1/d1 already exists"))
            #expect(Self.corral(cluster, 1, expect: 1, "disk", "create", "vol1/huge", "--size", "900T").contains("MiB free; vol1/huge needs"))
            #expect(Self.corral(cluster, 1, expect: 1, "disk", "create", "nope/d", "--size", "1M").contains("no volume named nope"))
            #expect(Self.corral(cluster, 1, expect: 1, "volume", "add", "vol1", "--path", "/elsewhere").contains("a volume named vol1 already exists"))
            #expect(Self.corral(cluster, 1, expect: 1, "volume", "remove", "vol1").contains("still holds disks d1, d2"))
            #expect(Self.corral(cluster, 1, expect: 1, "disk", "resize", "vol1/d1", "--size", "64M").contains("only grows it"))
            #expect(try #require(cluster.status(1)).digest == before)
            #expect(!FileManager.default.fileExists(atPath: directory + "/huge"))

            // The role moves on request, and the new coordinator runs the next operation.
            let first = try #require(Self.volume(cluster, 1, "vol1")?.coordinator)
            let target = ["node1", "node2", "node3"].first { $0 != first }!
            Self.corral(cluster, 1, expect: 0, "volume", "move", "vol1", "--to", target, "--wait", "--timeout", "20")
            Self.corral(cluster, 1, expect: 0, "disk", "create", "vol1/d3", "--size", "16M")
            let targetIndex = Int(target.dropFirst(4))!
            #expect(cluster.file(targetIndex, "corrald.log").contains("disk operation 4: create vol1/d3"))

            // Its node killed, the role goes to a survivor within the failover time.
            let started = Date()
            cluster.crash(targetIndex)
            let survivor = targetIndex == 1 ? 2 : 1
            try cluster.waitUntil("a survivor coordinates vol1", seconds: 30) {
                guard let c = Self.volume(cluster, survivor, "vol1")?.coordinator else { return false }
                return c != target
            }
            print("vol1's coordinator replaced \(Int(Date().timeIntervalSince(started) * 1000)) ms after its node was killed")
            Self.corral(cluster, survivor, expect: 0, "disk", "delete", "vol1/d3")
            #expect(!FileManager.default.fileExists(atPath: directory + "/d3"))
            for disk in ["d1", "d2"] { Self.corral(cluster, survivor, expect: 0, "disk", "delete", "vol1/\(disk)") }
            Self.corral(cluster, survivor, expect: 0, "volume", "remove", "vol1")
            #expect(cluster.status(survivor)?.volumes?.isEmpty == true)
        }
    }

    /// A VM whose disk is on a node's local volume runs there, and `vm list` says it is not HA.
    @Test func localVolumeVMIsNotHighlyAvailable() throws {
        try ClusterTesting.withCluster(id: 8, base: Self.base, nodes: 3, hypervisor: .none) { cluster in
            let directory = cluster.base + "/n2/local-disks"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            #expect(Self.corral(cluster, 1, expect: 1, "volume", "add", "loc", "--path", directory, "--local")
                .contains("a local volume needs the node whose directory it is (--node NAME)"))
            Self.corral(cluster, 1, expect: 0, "volume", "add", "loc", "--path", directory, "--local", "--node", "node2")
            try cluster.waitUntil("node2 has looked at loc", seconds: 20) { (Self.volume(cluster, 1, "loc")?.capacityMiB ?? 0) > 0 }
            #expect(Self.volume(cluster, 1, "loc")?.coordinator == "node2" && Self.volume(cluster, 1, "loc")?.seenBy == ["node2"])
            Self.corral(cluster, 1, expect: 0, "disk", "create", "loc/root", "--size", "16M")
            #expect(FileManager.default.fileExists(atPath: directory + "/root"))
            Self.corral(cluster, 3, expect: 0, "vm", "add", "app", "--memory", "256", "--disks", "loc/root", "--wait", "--timeout", "30")
            let row = try #require(cluster.status(1)?.vms.first { $0.name == "app" })
            #expect(row.node == "node2" && !row.highlyAvailable && row.localVolumes == ["loc"])
            #expect(Self.corral(cluster, 1, expect: 0, "vm", "list").contains("no (local volume loc)"))
            #expect(Self.corral(cluster, 1, expect: 1, "vm", "move", "app", "--to", "node1").contains("node1 does not see every volume of VM app (loc)"))
        }
    }

    /// A node that loses its path to a volume (`local-cluster hide-dir`) has its VMs on that
    /// volume moved to a node that still sees it, within a few probe periods; seen again, it
    /// counts as seeing the volume again.
    @Test func nodeThatLosesTheVolumeGivesUpItsVMs() throws {
        try ClusterTesting.withCluster(id: 8, base: Self.base, nodes: 3, hypervisor: .none) { cluster in
            let directory = cluster.base + "/shared/vol1"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            Self.corral(cluster, 1, expect: 0, "volume", "add", "vol1", "--path", directory)
            try cluster.waitUntil("vol1's free space is known", seconds: 20) { (Self.volume(cluster, 1, "vol1")?.capacityMiB ?? 0) > 0 }
            Self.corral(cluster, 1, expect: 0, "disk", "create", "vol1/db", "--size", "16M")
            Self.corral(cluster, 1, expect: 0, "vm", "add", "db", "--memory", "256", "--disks", "vol1/db", "--preferred", "node2",
                        "--wait", "--timeout", "30")
            #expect(cluster.status(1)?.vms.first { $0.name == "db" }?.node == "node2")
            let started = Date()
            #expect(cluster.script(["hide-dir", "2", directory]).status == 0)
            try cluster.waitUntil("db left node2", seconds: 30) {
                guard let row = cluster.status(1)?.vms.first(where: { $0.name == "db" }) else { return false }
                return row.node != "node2" && row.state == "running"
            }
            print("db moved off node2 \(Int(Date().timeIntervalSince(started) * 1000)) ms after node2 lost vol1")
            #expect(Self.volume(cluster, 1, "vol1")?.unreachableFrom == ["node2"])
            #expect(cluster.status(1)?.migrations.last?.purpose == "storage")
            #expect(Self.corral(cluster, 1, expect: 1, "vm", "move", "db", "--to", "node2").contains("node2 does not see every volume of VM db"))
            #expect(cluster.script(["unhide-dir", "2", directory]).status == 0)
            try cluster.waitUntil("node2 sees vol1 again", seconds: 20) { Self.volume(cluster, 1, "vol1")?.unreachableFrom == [] }
        }
    }

    /// Real QEMU guests (libvirt per node, lockd) on a qcow2 disk made on a volume: the guest
    /// opens it as qcow2, moves live to another node with its lease, and the image stays sound.
    @Test(.enabled(if: ClusterTesting.canRunLibvirt, "needs libvirt and QEMU"))
    func qcow2VolumeDiskOnARealGuestMovesLive() throws {
        try ClusterTesting.withCluster(id: 8, base: Self.base, nodes: 3, hypervisor: .libvirt) { cluster in
            let directory = cluster.base + "/shared/vol1"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            Self.corral(cluster, 1, expect: 0, "volume", "add", "vol1", "--path", directory)
            try cluster.waitUntil("vol1's free space is known", seconds: 20) { (Self.volume(cluster, 1, "vol1")?.capacityMiB ?? 0) > 0 }
            Self.corral(cluster, 1, expect: 0, "disk", "create", "vol1/root", "--size", "64M", "--format", "qcow2")
            Self.corral(cluster, 1, expect: 0, "vm", "add", "db", "--memory", "64", "--disks", "vol1/root", "--preferred", "node1",
                        "--wait", "--timeout", "90")
            #expect(cluster.guests(1) == ["db"])
            let xml = cluster.exec(1, ["virsh", "-c", "qemu:///system", "dumpxml", "db"]).output
            #expect(xml.contains("type='qcow2'") && xml.contains(directory + "/root"), "db's disk: \(xml)")

            Self.corral(cluster, 2, expect: 0, "vm", "move", "db", "--to", "node2", "--wait", "--timeout", "90")
            try cluster.waitUntil("db runs on node2 only", seconds: 30) { cluster.guests(1) == [] && cluster.guests(2) == ["db"] }
            let disk = try #require(Self.volume(cluster, 3, "vol1")?.disks.first)
            #expect(disk.vm == "db" && disk.leaseHolders == ["node2"], "the lease moved with the guest: \(disk)")
            #expect(Self.corral(cluster, 3, expect: 1, "disk", "delete", "vol1/root").contains("disk vol1/root belongs to VM db"))
            let check = CommandRunner.run(["/usr/bin/qemu-img", "check", "-U", "-f", "qcow2", directory + "/root"])
            #expect(check.status == 0, "qemu-img check: \(check.output)")
            Self.corral(cluster, 1, expect: 0, "vm", "stop", "db", "--wait", "--timeout", "60")
        }
    }
}
