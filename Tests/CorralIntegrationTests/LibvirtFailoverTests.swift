import CorralAgent
import CorralCore
import CorralTestbed
import Foundation
import Testing

/// Node faults on a fresh libvirt cluster (same suite as LibvirtClusterTests, so serialized with
/// it: both use cluster id 5). Fencing is by lease only (no fence agent): a lost node's VMs may
/// restart only after lease (5 s) + margin (0.5 s) since its last heartbeat, by which time it
/// stopped them itself or its test watchdog killed it.
extension LibvirtClusterTests {
    /// Crash, hung agent (SIGSTOP), Corosync killed, partition: each time the lost node's HA VMs
    /// run again on the survivors (hypervisor truth), never on two nodes at once, with
    /// anti-affinity and capacity honoured and an unplaceable VM left pending with a reason;
    /// the node comes back and rejoins with one digest.
    ///
    /// Placement is arranged so that each recovery decision shows a rule: capacity 1024 MiB a
    /// node; w1 and w2 share the anti-affinity class "web"; big (700 MiB) fits on no survivor.
    @Test func lostNodesVMsRecoverOnSurvivors() throws {
        try Self.withLibvirtCluster("failover") { cluster, watch in
            let ha = ["big", "f2", "f3", "w1", "w2"]

            try watch.step("set-up: node1 = w1 big nh, node2 = w2 f2, node3 = f3") {
                let vms: [[String]] = [
                    ["w1", "--memory", "64", "--anti-affinity", "web", "--preferred", "node1"],
                    ["big", "--memory", "700", "--preferred", "node1"],
                    ["nh", "--memory", "64", "--no-ha", "--preferred", "node1"],
                    ["w2", "--memory", "64", "--anti-affinity", "web", "--preferred", "node2"],
                    ["f2", "--memory", "350", "--preferred", "node2"],
                    ["f3", "--memory", "450", "--preferred", "node3"],
                ]
                for vm in vms {
                    let r = watch.corral(1, ["vm", "add"] + vm + ["--wait", "--timeout", "60"])
                    #expect(r.status == 0, "vm add \(vm[0]): \(r.output)")
                }
                let o = try watch.waitUntilConsistent("6 VMs added")
                for (vm, node) in [("w1", 1), ("big", 1), ("nh", 1), ("w2", 2), ("f2", 2), ("f3", 3)] {
                    #expect(o.guests.nodesListing(vm) == [node], "\(vm) should run on node\(node): \(o.guests)")
                }
            }

            try watch.step("A. crash node1: w1 fails over to node3 (anti-affinity), big is pending (no room), nh (not HA) stays stopped") {
                let crashed = watch.elapsed
                cluster.crash(1)
                watch.note("  crashed node1")
                var o = try watch.waitUntil("node1 fenced, w1 runs on a survivor", seconds: 45, statusFrom: [2, 3]) { o in
                    o.node("node1")?.state == "fenced" && o.vm("w1")?.state == "running" && o.guests.nodesRunning("w1").count == 1
                }
                watch.note(String(format: "  w1 ran again %.1f s after the crash (hypervisor truth)", watch.elapsed - crashed))
                #expect(o.guests.nodesRunning("w1") == [3], "w1 goes to node3: node2 has more free memory but runs w2 of the same class: \(o.guests)")
                o = try watch.waitUntil("big is pending with a reason, nh is stopped", seconds: 15, statusFrom: [2, 3]) { o in
                    o.vm("big")?.state == "pending" && o.vm("big")?.reason.contains("700 MiB") == true && o.vm("nh")?.state == "stopped"
                }
                #expect(o.vm("big")?.reason.contains("no node has 700 MiB free") == true, "big's pending reason: \(String(describing: o.vm("big")))")
                #expect(o.vm("nh")?.reason.contains("not highly available") == true, "nh's reason: \(String(describing: o.vm("nh")))")
                try watch.waitUntilConsistent("after node1's crash", statusFrom: [2, 3])
                let history = watch.corral(2, ["events", "--json", "--last", "200"])
                let lines = history.output.split(separator: "\n").compactMap { try? JSONCoding.decode(JournalEntry.self, from: Array($0.utf8)) }
                #expect(lines.contains { $0.kind == .node && $0.subject == "node1" && $0.message.hasSuffix("→ fenced") }, "corral events on node2: \(history.output)")
                #expect(lines.contains { $0.subject == "w1" && $0.message == "pending → starting on node3 (after failover from node1)" }, "corral events on node2: \(history.output)")
                let metrics = watch.corral(2, ["metrics"])
                #expect(metrics.output.contains("\ncorral_events_total{kind=\"fencing\"} 1\n") && metrics.output.contains("\ncorral_events_total{kind=\"failover\"} 1\n"),
                        "node1 fenced once; w1 failed over (big has no room, nh is not HA): \(metrics.output)")

                watch.start(1)
                _ = try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
                o = try watch.waitUntil("big placed on the returned node1", seconds: 45) { o in
                    o.vm("big")?.state == "running" && o.guests.nodesRunning("big") == [1]
                }
                o = try watch.waitUntilConsistent("node1 rejoined")
                #expect(o.guests.nodesListing("w1") == [3], "no automatic failback of w1: \(o.guests)")
                #expect(o.vm("nh")?.state == "stopped")
            }

            try watch.step("B. SIGSTOP node2's corrald: its watchdog kills node2 at lease end, w2 and f2 recover on the survivors") {
                let paused = watch.elapsed
                cluster.pauseAgent(2)
                watch.note("  paused node2's corrald")
                var o = try watch.waitUntil("node2 fenced; w2 and f2 run on survivors", seconds: 45, statusFrom: [1, 3]) { o in
                    o.node("node2")?.state == "fenced" && ["w2", "f2"].allSatisfy { vm in
                        o.vm(vm)?.state == "running" && o.guests.nodesRunning(vm).count == 1 && !o.guests.nodesRunning(vm).contains(2)
                    }
                }
                watch.note(String(format: "  w2 and f2 ran again %.1f s after the SIGSTOP", watch.elapsed - paused))
                #expect(o.guests.nodesRunning("f2") == [3], "f2 (350 MiB) fits only on node3: \(o.guests)")
                #expect(o.guests.nodesRunning("w2") == [1], "w2 goes to node1 (node3 runs w1 of the same class): \(o.guests)")
                #expect(cluster.file(2, "watchdog.log").contains("watchdog fired for node 2"),
                        "node2's watchdog should have fired: \(cluster.file(2, "watchdog.log"))")
                #expect(o.guests.nodes[2] == nil, "node2 was killed by its watchdog (its libvirtd is gone): \(o.guests)")
                try watch.waitUntilConsistent("after node2's hung agent", statusFrom: [1, 3])

                watch.start(2)
                _ = try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
                o = try watch.waitUntilConsistent("node2 rejoined")
                #expect(o.guests.listed(on: 2).isEmpty)
            }

            try watch.step("C. kill node3's Corosync: node3 stops its VMs at lease end, the survivors recover them") {
                let killed = watch.elapsed
                cluster.killCorosync(3)
                watch.note("  killed node3's corosync")
                let o = try watch.waitUntil("node3 fenced; f2, f3 and w1 run on survivors", seconds: 45, statusFrom: [1, 2]) { o in
                    o.node("node3")?.state == "fenced" && ["f2", "f3", "w1"].allSatisfy { vm in
                        o.vm(vm)?.state == "running" && o.guests.nodesRunning(vm).count == 1 && !o.guests.nodesRunning(vm).contains(3)
                    }
                }
                watch.note(String(format: "  f2, f3 and w1 ran again %.1f s after corosync died", watch.elapsed - killed))
                #expect(o.guests.nodesRunning("w1") == [2], "w1 goes to node2, though node1 has more free memory: node1 runs w2 of the same class: \(o.guests)")
                #expect(o.guests.nodesRunning("f3") == [2], "f3 (450 MiB) fits only on node2: \(o.guests)")
                let log = cluster.file(3, "corrald.log")
                #expect(log.contains("lost Corosync"), "node3's corrald should log that it lost Corosync")
                watch.note("  node3: corrald self-fenced: \(log.contains("self-fence")); watchdog fired: \(cluster.file(3, "watchdog.log").contains("watchdog fired"))")
                try watch.waitUntilConsistent("after node3 lost corosync", statusFrom: [1, 2])

                watch.start(3)
                _ = try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
                try watch.waitUntilConsistent("node3 rejoined")
            }

            try watch.step("D. partition node2: it stops its VMs (no quorum) before its lease ends, the majority recovers them; heal → one digest") {
                // Logs accumulate across the node's restarts: count what this step adds.
                func count(_ text: String, in file: String) -> Int { cluster.file(2, file).components(separatedBy: text).count - 1 }
                let (firedBefore, selfFencedBefore) = (count("watchdog fired for node 2", in: "watchdog.log"), count("self-fence: no quorum", in: "corrald.log"))
                let cut = watch.elapsed
                cluster.partition(2)
                watch.note("  partitioned node2")
                var o = try watch.waitUntil("node2 fenced; f2, f3 and w1 run on the majority", seconds: 45, statusFrom: [1, 3]) { o in
                    o.node("node2")?.state == "fenced" && ["f2", "f3", "w1"].allSatisfy { vm in
                        o.vm(vm)?.state == "running" && o.guests.nodesRunning(vm).count == 1 && !o.guests.nodesRunning(vm).contains(2)
                    }
                }
                watch.note(String(format: "  f2, f3 and w1 ran again %.1f s after the partition", watch.elapsed - cut))
                #expect(o.guests.nodesRunning("w1") == [3], "w1 goes to node3, though node1 has more free memory: node1 runs w2 of the same class: \(o.guests)")
                #expect(o.guests.listed(on: 2).isEmpty, "the minority runs nothing: \(o.guests)")
                // node2 learns it lost quorum ~3.6 s after the cut (token + consensus) and its lease
                // ends ~5 s after its last heartbeat: it stops its VMs itself in between, or, on a
                // starved machine, its watchdog kills it first. Either way nothing of it runs.
                // Its lease is over (the majority waited for that), so its watchdog resets it
                // (the supervisor writes 0 to the watchdog file once it has killed the node)
                // unless corrald disarmed it.
                try watch.waitUntil("node2's watchdog fired or is disarmed", seconds: 20, statusFrom: [1, 3]) { _ in
                    cluster.file(2, "watchdog").trimmingCharacters(in: .whitespacesAndNewlines) == "0"
                }
                let selfFenced = count("self-fence: no quorum", in: "corrald.log") > selfFencedBefore
                let fired = count("watchdog fired for node 2", in: "watchdog.log") > firedBefore
                #expect(selfFenced || fired, "node2 stopped its VMs itself or its watchdog reset it")
                watch.note("  node2 self-fenced (stopped its VMs for want of quorum): \(selfFenced); its watchdog fired: \(fired)")
                try watch.waitUntilConsistent("after node2's partition", statusFrom: [1, 3])

                cluster.heal(2)
                watch.note("  healed node2's link")
                if fired {
                    watch.note("  node2 does not answer (reset by its watchdog at lease end); powering it on")
                    watch.start(2)
                }
                let report = try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
                #expect(Set(report.vms.map(\.name)) == Set(ha + ["nh"]))
                o = try watch.waitUntilConsistent("node2 rejoined")
                #expect(o.guests.listed(on: 2).isEmpty)
            }

            let o = try watch.waitUntilConsistent("end")
            for vm in ha { #expect(o.vm(vm)?.state == "running" && o.guests.nodesListing(vm).count == 1, "HA VM \(vm) runs exactly once: \(o.guests)") }
            #expect(o.vm("nh")?.state == "stopped")
        }
    }
}
