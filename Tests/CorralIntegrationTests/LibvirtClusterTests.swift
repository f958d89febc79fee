import CorralAgent
import CorralTestbed
import Foundation
import Glibc
import Testing

/// A real 3-node cluster in which every node runs its own libvirtd and corrald starts real
/// (TCG, diskless) QEMU guests; placement is checked against each node's own libvirtd, and
/// every poll checks that no VM runs on two nodes at once (DESIGN §3.1).
///
/// Cluster id 5, base /run/corral-test-libvirt. Starting a libvirt cluster costs ~15 s, so each
/// test is a scenario of steps on one cluster (Swift Testing has no suite teardown to share
/// one across tests); `withLibvirtCluster` tears it down whatever happens. The tests of this
/// suite use the same cluster id, hence `.serialized`. The destructive fault scenarios are in
/// LibvirtFailoverTests.swift, on a fresh cluster.
@Suite(.serialized, .enabled(if: ClusterTesting.canRunLibvirt, "needs root, a built corrald, libvirt and QEMU"))
struct LibvirtClusterTests {
    static let clusterID = 5
    static let base = "/run/corral-test-libvirt"

    /// Other suites pass their own `id` and `base` to run the same way on a cluster of their own.
    static func withLibvirtCluster(id: Int = clusterID, base: String = base, _ name: String, agentArguments: String? = nil,
                                   _ body: (LocalCluster, ClusterWatch) throws -> Void) throws {
        try ClusterTesting.withCluster(id: id, base: base, nodes: 3, hypervisor: .libvirt, agentArguments: agentArguments) { cluster in
            let watch = ClusterWatch(cluster, name: name)
            watch.note("cluster \(id) up")
            defer { watch.note("tearing down: \(watch.samples) hypervisor samples, \(watch.violations.count) double-run violations") }
            do {
                try body(cluster, watch)
            } catch {
                watch.note("FAILED: \(error)")
                watch.dumpLogs()
                throw error
            }
        }
    }

    /// Operator requests on real guests: add, move, drain and failback, bandwidth caps,
    /// migration faults (destination dies, migrations refused), the restart policy.
    /// corrald is told its link (1000 Mbit/s), so auto-tune caps every migration.
    @Test func operatorRequestsOnRealGuests() throws {
        try Self.withLibvirtCluster("operator", agentArguments: "--link-mbps 1000") { cluster, watch in
            let guests = ["alpha", "bravo", "charlie", "delta"]

            try watch.step("1. vm add ×4: each runs where the state says, nowhere else") {
                for (vm, preferred) in zip(guests, ["node1", "node1,node2", "node2", "node3"]) {
                    let r = watch.corral(1, ["vm", "add", vm, "--memory", "64", "--preferred", preferred, "--wait", "--timeout", "60"])
                    #expect(r.status == 0, "vm add \(vm) --wait: \(r.output)")
                }
                let o = try watch.waitUntilConsistent("4 VMs added")
                for (vm, node) in zip(guests, [1, 1, 2, 3]) {
                    #expect(o.nodeIndex(of: vm) == node, "\(vm) should be placed on its preferred node\(node): \(o.summary)")
                    #expect(o.guests.nodesListing(vm) == [node], "\(vm) should run on node\(node) only: \(o.guests)")
                }
            }

            try watch.step("2. vm move --to --wait: runs only on the target; job succeeded with downtime") {
                let r = try watch.corralWhileSampling(1, ["vm", "move", "charlie", "--to", "node3", "--wait", "--timeout", "60"])
                #expect(r.status == 0, "vm move charlie --to node3 --wait: \(r.output)")
                let o = try watch.waitUntilConsistent("charlie moved")
                #expect(o.guests.nodesListing("charlie") == [3], "charlie should run on node3 only: \(o.guests)")
                let job = try watch.migrations(1).last { $0.vm == "charlie" }
                #expect(job?.state == "succeeded" && job?.to == "node3" && job?.purpose == "move", "charlie's move job: \(String(describing: job))")
                #expect((job?.downtimeMs ?? 0) > 0, "a live migration has a downtime > 0: \(String(describing: job))")
            }

            try watch.step("3. node drain --wait empties node1, none ever on two nodes; resume --failback brings its VMs back") {
                let before = watch.sample()
                let r = try watch.corralWhileSampling(2, ["node", "drain", "node1", "--wait", "--timeout", "60"])
                #expect(r.status == 0, "node drain node1 --wait: \(r.output)")
                var o = try watch.waitUntilConsistent("node1 drained")
                #expect(o.node("node1")?.state == "drained")
                #expect(o.guests.listed(on: 1).isEmpty, "node1 should run nothing: \(o.guests)")
                for vm in guests {
                    let nodes = o.guests.nodesRunning(vm)
                    #expect(nodes.count == 1 && nodes != [1], "\(vm) should run on exactly one node other than node1: \(o.guests)")
                }
                // Live: the drained VMs kept running (a stop and start would have a new domain on the source first).
                let drainJobs = try watch.migrations(2).filter { $0.purpose == "drain" && $0.from == "node1" }
                #expect(Set(drainJobs.map(\.vm)) == Set(before.listed(on: 1)), "one drain job per VM of node1: \(drainJobs)")
                #expect(drainJobs.allSatisfy { $0.state == "succeeded" }, "drain jobs: \(drainJobs)")

                let back = try watch.corralWhileSampling(2, ["node", "resume", "node1", "--failback", "--wait", "--timeout", "60"])
                #expect(back.status == 0, "node resume node1 --failback --wait: \(back.output)")
                o = try watch.waitUntilConsistent("failback to node1")
                #expect(o.node("node1")?.state == "up")
                for vm in ["alpha", "bravo"] {
                    #expect(o.guests.nodesListing(vm) == [1], "\(vm) (preferred node1 first) should be back on node1: \(o.guests)")
                }
                #expect(o.guests.nodesListing("charlie") == [3] && o.guests.nodesListing("delta") == [3],
                        "VMs preferring other nodes stay where they are: \(o.guests)")
                let failbacks = try watch.migrations(2).filter { $0.purpose == "failback" }
                #expect(Set(failbacks.map(\.vm)) == ["alpha", "bravo"] && failbacks.allSatisfy { $0.state == "succeeded" }, "failback jobs: \(failbacks)")
            }

            try watch.step("4. bandwidth: auto-tune off runs uncapped; auto-tune on caps at the stream rate and re-tunes in flight") {
                // An idle diskless guest sends < 1 MiB: slow node3's TCP so the jobs can be seen running.
                #expect(watch.corral(1, ["config", "set", "migration.auto-tune", "off"]).status == 0)
                try cluster.throttleTCP(3, "200kbit")
                defer { cluster.unthrottle(3) }
                #expect(watch.corral(1, ["vm", "move", "delta", "--to", "node2"]).status == 0)
                var o = try watch.waitUntil("delta's migration runs", seconds: 30) { o in
                    o.status?.migrations.last { $0.vm == "delta" }?.state == "running"
                }
                #expect(o.status?.migrations.last { $0.vm == "delta" }?.bandwidthMiBps == 0, "auto-tune off: the job is uncapped: \(o.summary)")
                let uncapped = migrationSpeed(cluster, node: 3, vm: "delta")
                #expect((uncapped ?? 0) >= 1_000, "libvirt's cap on the source should be lifted, got \(String(describing: uncapped)) MiB/s")
                cluster.unthrottle(3)
                o = try watch.waitUntil("delta's uncapped move succeeded", seconds: 60) { o in
                    o.status?.migrations.last { $0.vm == "delta" }?.state == "succeeded"
                }
                o = try watch.waitUntilConsistent("delta on node2")
                #expect(o.guests.nodesListing("delta") == [2])

                #expect(watch.corral(1, ["config", "set", "migration.auto-tune", "on"]).status == 0)
                let set = watch.corral(1, ["config", "set", "migration.stream-mbps", "80"])
                #expect(set.status == 0 && set.output.contains("stream 9 MiB/s"), "80 Mbit/s is 9 MiB/s: \(set.output)")
                try cluster.throttleTCP(2, "200kbit")
                defer { cluster.unthrottle(2) }
                #expect(watch.corral(1, ["vm", "move", "delta", "--to", "node3"]).status == 0)
                o = try watch.waitUntil("delta's migration runs capped at 9 MiB/s (job and libvirt)", seconds: 30) { o in
                    guard let job = o.status?.migrations.last(where: { $0.vm == "delta" }), job.state == "running" else { return false }
                    return job.bandwidthMiBps == 9 && migrationSpeed(cluster, node: 2, vm: "delta") == 9
                }
                // Lower the stream rate while the job runs: the scheduler re-tunes it, corrald tells libvirt.
                #expect(watch.corral(1, ["config", "set", "migration.stream-mbps", "16"]).status == 0)
                o = try watch.waitUntil("delta's running migration is re-capped at 1 MiB/s (job and libvirt)", seconds: 30) { o in
                    guard let job = o.status?.migrations.last(where: { $0.vm == "delta" }), job.state == "running" else { return false }
                    return job.bandwidthMiBps == 1 && migrationSpeed(cluster, node: 2, vm: "delta") == 1
                }
                cluster.unthrottle(2)
                var rates: [Int] = []
                o = try watch.waitUntil("delta's capped move succeeded", seconds: 60) { o in
                    guard let job = o.status?.migrations.last(where: { $0.vm == "delta" }) else { return false }
                    if job.state == "running", let rate = job.rateMiBps { rates.append(rate) }
                    return job.state == "succeeded"
                }
                watch.note("  rates reported while capped at 1 MiB/s: \(rates) MiB/s")
                #expect(rates.allSatisfy { $0 <= 2 }, "the reported rate respects the 1 MiB/s cap (±rounding): \(rates)")
                #expect(o.status?.migrations.last { $0.vm == "delta" }?.bandwidthMiBps == 1)
                #expect(watch.corral(1, ["config", "set", "migration.stream-mbps", "0"]).status == 0)
                o = try watch.waitUntilConsistent("delta back on node3")
                #expect(o.guests.nodesListing("delta") == [3])
            }

            try watch.step("5a. the destination dies mid-migration: the VM runs on its source, once; the job failed with a reason") {
                let before = watch.sample()
                let domain = try #require(before.domain("alpha", on: 1), "alpha runs on node1: \(before)")
                try cluster.throttleTCP(1, "200kbit")
                defer { cluster.unthrottle(1) }
                #expect(watch.corral(3, ["vm", "move", "alpha", "--to", "node2"]).status == 0)
                try watch.waitUntil("alpha's migration to node2 runs", seconds: 30) { o in
                    o.status?.migrations.last { $0.vm == "alpha" }?.state == "running" && o.guests.domain("alpha", on: 2) != nil
                }
                cluster.crash(2)
                watch.note("  crashed node2 (the destination)")
                var job: StatusReport.MigrationRow?
                let o = try watch.waitUntil("alpha's job failed and alpha runs on node1 only", seconds: 60, statusFrom: [1, 3]) { o in
                    job = o.status?.migrations.last { $0.vm == "alpha" }
                    return job?.state == "failed" && o.vm("alpha")?.state == "running" && o.guests.nodesRunning("alpha") == [1]
                }
                watch.note("  job failed: \(job?.failure ?? "?"); node2 is \(o.node("node2")?.state ?? "?")")
                #expect(!(job?.failure.isEmpty ?? true), "the failed job says why: \(String(describing: job))")
                #expect(o.vm("alpha")?.node == "node1", "the state keeps alpha on its source")
                #expect(o.guests.domain("alpha", on: 1)?.id == domain.id, "alpha kept running on node1 (same domain, not restarted): \(o.guests)")
                cluster.unthrottle(1)
                watch.start(2)
                _ = try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
                let after = try watch.waitUntilConsistent("node2 rejoined")
                #expect(after.guests.nodesListing("alpha") == [1])
            }

            try watch.step("5b. a drain that cannot place a VM is refused; a drain whose migrations fail stops and names the VM, which keeps running") {
                #expect(watch.corral(1, ["vm", "add", "echo", "--memory", "950", "--preferred", "node2", "--wait", "--timeout", "60"]).status == 0)
                var o = try watch.waitUntilConsistent("echo added")
                #expect(o.guests.nodesListing("echo") == [2])
                let refused = watch.corral(1, ["node", "drain", "node2"])
                #expect(refused.status != 0 && refused.output.contains("cannot drain node2") && refused.output.contains("echo"),
                        "the drain is refused, naming echo: \(refused.output)")
                o = try watch.waitUntilConsistent("refused drain changed nothing")
                #expect(o.node("node2")?.state == "up" && o.guests.nodesListing("echo") == [2])
                #expect(watch.corral(1, ["vm", "stop", "echo", "--wait", "--timeout", "60"]).status == 0)
                #expect(watch.corral(1, ["vm", "remove", "echo"]).status == 0)

                let before = watch.sample()
                try cluster.blockMigrationStreams(3)
                defer { cluster.unblockMigrationStreams(3) }
                let r = try watch.corralWhileSampling(1, ["node", "drain", "node3", "--wait", "--timeout", "60"])
                #expect(r.status != 0 && r.output.contains("drain of node3 stopped") && r.output.contains("migration failed"),
                        "the drain stops and says why: \(r.output)")
                o = try watch.waitUntilConsistent("drain of node3 stopped")
                let failures = o.node("node3")?.drainFailures ?? []
                #expect(o.node("node3")?.state == "paused", "a stopped drain leaves the node paused: \(o.summary)")
                #expect(!failures.isEmpty && failures.allSatisfy { $0.hasPrefix("charlie:") || $0.hasPrefix("delta:") },
                        "drainFailures name the VMs: \(failures)")
                for vm in ["charlie", "delta"] {
                    #expect(o.guests.domain(vm, on: 3) == before.domain(vm, on: 3) && o.guests.nodesListing(vm) == [3],
                            "\(vm) keeps running on node3, not stopped or restarted: \(o.guests)")
                }
                cluster.unblockMigrationStreams(3)
                #expect(watch.corral(1, ["node", "resume", "node3"]).status == 0)
                o = try watch.waitUntilConsistent("node3 resumed")
                #expect(o.node("node3")?.state == "up" && o.node("node3")?.drainFailures == [])
            }

            try watch.step("7. restart policy: crashes restart in place twice, then elsewhere, then the VM is left failed") {
                #expect(watch.corral(1, ["config", "set", "recovery.max-crashes", "3"]).status == 0)
                #expect(watch.corral(1, ["vm", "add", "foxtrot", "--memory", "64", "--preferred", "node2", "--wait", "--timeout", "60"]).status == 0)
                var o = try watch.waitUntilConsistent("foxtrot added")
                #expect(o.guests.nodesListing("foxtrot") == [2])
                for crash in 1...3 {
                    let (node, domain) = try killGuest(cluster, watch, "foxtrot")
                    o = try watch.waitUntil("foxtrot runs again after crash \(crash)", seconds: 45) { o in
                        guard o.vm("foxtrot")?.state == "running", let i = o.nodeIndex(of: "foxtrot") else { return false }
                        return o.guests.nodesRunning("foxtrot") == [i] && o.guests.domain("foxtrot", on: i) != domain
                    }
                    let now = o.nodeIndex(of: "foxtrot")
                    if crash <= 2 {
                        #expect(now == node, "crash \(crash) ≤ recovery.restarts-in-place (2): restarted in place on node\(node), got \(String(describing: now))")
                    } else {
                        #expect(now != node, "crash 3 > restarts-in-place: restarted on another node than node\(node)")
                    }
                }
                _ = try killGuest(cluster, watch, "foxtrot")
                o = try watch.waitUntil("foxtrot is failed after crash 4 > recovery.max-crashes (3)", seconds: 30) { o in
                    o.vm("foxtrot")?.state == "failed"
                }
                #expect(o.vm("foxtrot")?.reason.contains("crashed 4 times") == true, "failed reason: \(String(describing: o.vm("foxtrot")))")
                // Sleeps, not a wait: 3 s must pass to show that the failed VM is *not* restarted.
                for _ in 0..<6 {
                    let s = watch.sample()
                    #expect(s.nodesListing("foxtrot").isEmpty, "a failed VM is not restarted: \(s)")
                    Thread.sleep(forTimeInterval: 0.5)
                }
                o = try watch.waitUntilConsistent("foxtrot left failed")
                #expect(o.vm("foxtrot")?.state == "failed")
                #expect(watch.corral(1, ["vm", "remove", "foxtrot"]).status == 0)
            }

            let report = try cluster.waitForAgreement([1, 2, 3], members: 3)
            #expect(Set(report.vms.map(\.name)) == Set(guests))
            try watch.waitUntilConsistent("end")
        }
    }
}

/// libvirt's current migration cap for `vm` on `node` (`virsh migrate-getspeed`, MiB/s).
func migrationSpeed(_ cluster: LocalCluster, node: Int, vm: String) -> Int? {
    let r = cluster.exec(node, ["timeout", "10", "virsh", "-q", "-c", "qemu:///system", "migrate-getspeed", vm])
    guard r.status == 0 else { return nil }
    return Int(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
}

/// Kills `vm`'s QEMU process (SIGKILL; found through its node's libvirt pid file, never by
/// name: other clusters on this machine may run guests of the same name). Returns where it ran
/// and its domain there.
func killGuest(_ cluster: LocalCluster, _ watch: ClusterWatch, _ vm: String) throws -> (node: Int, domain: Domain) {
    let s = watch.sample()
    guard let node = s.nodesRunning(vm).first, s.nodesRunning(vm).count == 1, let domain = s.domain(vm, on: node) else {
        throw ClusterError("\(vm) does not run on exactly one node: \(s)")
    }
    let r = cluster.exec(node, ["timeout", "10", "cat", "/run/libvirt/qemu/\(vm).pid"])
    guard r.status == 0, let pid = pid_t(r.output.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 else {
        throw ClusterError("no QEMU pid for \(vm) on node\(node): \(r.output)")
    }
    guard kill(pid, SIGKILL) == 0 else { throw ClusterError("kill \(pid) (\(vm) on node\(node)) failed: errno \(errno)") }
    watch.note("  killed \(vm)'s QEMU (pid \(pid)) on node\(node)")
    return (node, domain)
}
