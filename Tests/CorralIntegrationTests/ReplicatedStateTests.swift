import CorralAgent
import CorralTestbed
import Foundation
import Testing

/// Real Corosync nodes in network namespaces with real corrald agents: the replicated state
/// stays identical across members through concurrent commands, crashes, partitions and restarts.
/// Record-only clusters (no hypervisor), cluster id 0.
@Suite(.serialized, .enabled(if: ClusterTesting.canRun, "needs root and a built corrald"))
struct ReplicatedStateTests {
    static func withCluster(nodes: Int, _ body: (LocalCluster) throws -> Void) throws {
        try ClusterTesting.withCluster(id: 0, base: "/run/corral-test-cluster", nodes: nodes, hypervisor: .none, body)
    }

    /// How long node `i`'s test watchdog deadline (CLOCK_BOOTTIME ms in its watchdog file) lies ahead.
    static func leaseLeftMs(_ cluster: LocalCluster, _ i: Int) -> Int {
        let deadline = Int(cluster.file(i, "watchdog").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let uptime = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) } ?? 0
        return deadline - Int(uptime * 1000)
    }

    @Test(arguments: [3, 5])
    func concurrentCommandsOnEveryNodeGiveOneState(nodes: Int) throws {
        try Self.withCluster(nodes: nodes) { cluster in
            // Every node adds its own VMs at the same time; all must end with every VM and one digest.
            DispatchQueue.concurrentPerform(iterations: nodes) { i in
                for k in 1...6 { cluster.corral(i + 1, "vm", "add", "vm\(i + 1)-\(k)", "--memory", "512") }
            }
            let report = try cluster.waitForAgreement(Array(1...nodes), members: nodes)
            #expect(report.vms.count == nodes * 6)
            try cluster.waitUntil("every VM is placed") { cluster.status(1)?.vms.allSatisfy { $0.state == "running" } ?? false }
            _ = try cluster.waitForAgreement(Array(1...nodes), members: nodes)
        }
    }

    @Test(arguments: [3, 5])
    func killedNodeLeavesSurvivorsAgreedAndItsVMsFailOver(nodes: Int) throws {
        try Self.withCluster(nodes: nodes) { cluster in
            cluster.corral(1, "vm", "add", "web", "--memory", "1024", "--preferred", "node2")
            try cluster.waitUntil("web runs on node2") { cluster.status(1)?.vms.first?.node == "node2" }
            cluster.crash(2)
            let survivors = (1...nodes).filter { $0 != 2 }
            let report = try cluster.waitForAgreement(survivors, members: nodes - 1)
            #expect(report.members == survivors.map { "node\($0)" })
            try cluster.waitUntil("web failed over after node2 was fenced") {
                guard let s = cluster.status(survivors.last!) else { return false }
                return s.nodes.first { $0.name == "node2" }?.state == "fenced" && s.vms.first?.node != "node2" && s.vms.first?.state == "running"
            }
            cluster.start(2)
            _ = try cluster.waitForAgreement(Array(1...nodes), members: nodes)
        }
    }

    @Test(arguments: [3, 5])
    func isolatedNodeRefusesChangesAndCatchesUpAfterHeal(nodes: Int) throws {
        try Self.withCluster(nodes: nodes) { cluster in
            // This test is about a partition merging back. An isolated node stops renewing its
            // self-fence lease, and at lease end its (test) watchdog resets it, VMs or not; the
            // default 5 s lease ends before the heal below, so make it outlast the isolation.
            // (It also keeps the majority of 5 alive: Corosync takes ~6.5 s to re-form a
            // 5-node membership, longer than the default lease; see killedNode… with 5 nodes.)
            #expect(cluster.corral(1, "config", "set", "fencing.lease-ms", "30000").status == 0)
            try cluster.waitUntil("every node renewed its lease for > 20 s") {
                (1...nodes).allSatisfy { Self.leaseLeftMs(cluster, $0) > 20_000 }
            }
            cluster.partition(nodes)
            try cluster.waitUntil("the isolated node reports not quorate") { cluster.status(nodes)?.quorate == false }
            let refused = cluster.corral(nodes, "vm", "add", "lonely", "--memory", "256")
            #expect(refused.status != 0)
            #expect(refused.output.contains("no quorum"))
            _ = try cluster.waitForAgreement(Array(1..<nodes), members: nodes - 1)
            #expect(cluster.corral(1, "vm", "add", "majority", "--memory", "256").status == 0)
            cluster.heal(nodes)
            let report = try cluster.waitForAgreement(Array(1...nodes), members: nodes)
            #expect(report.vms.map(\.name) == ["majority"])
        }
    }

    @Test func restartedNodeCatchesUp() throws {
        try Self.withCluster(nodes: 3) { cluster in
            cluster.crash(3)
            _ = try cluster.waitForAgreement([1, 2], members: 2)
            for k in 1...5 { #expect(cluster.corral(1, "vm", "add", "late\(k)", "--memory", "256").status == 0) }
            // corrald under Type=notify: READY=1 only once it is quorate and synced with the
            // others; STATUS= lines before it (and Corosync's own bare READY=1) are skipped.
            let systemd = try NotifyListener(cluster.base + "/n3/notify.sock", timeoutSeconds: 30)
            // WatchdogSec=1s as systemd would pass it: WATCHDOG=1 every half second from the loop.
            let started = ClusterTesting.script(cluster, ["start", "3"], environment: ["NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "1000000"])
            #expect(started.status == 0, "local-cluster start 3: \(started.output)")
            var seen: [String] = []
            for _ in 1...100 {
                guard let datagram = systemd.receive() else { break }
                if datagram != "WATCHDOG=1" { seen.append(datagram) }
                if datagram.hasPrefix("READY=1\nSTATUS=") { break }
            }
            #expect(seen.last == "READY=1\nSTATUS=quorate, 3 members, 0 guests here", "corrald's notifications: \(seen)")
            var pings = 0
            for _ in 1...10 where pings < 3 {
                guard let datagram = systemd.receive() else { break }
                if datagram == "WATCHDOG=1" { pings += 1 }
            }
            #expect(pings == 3, "WATCHDOG=1 keeps coming after READY=1")
            let report = try cluster.waitForAgreement([1, 2, 3], members: 3)
            #expect(report.vms.count == 5)
            #expect(report.leaseRemainingMs.map { $0 > 0 } == true, "status shows the lease left")
            // Scraped as node-exporter's textfile collector would read it.
            let metrics = cluster.corral(1, "metrics")
            #expect(metrics.status == 0)
            for sample in ["corral_up 1", "corral_quorate 1", "corral_members 3", "corral_events_total{kind=\"fencing\"} 0"] {
                #expect(metrics.output.contains("\n\(sample)\n"), "corral metrics on node1 lacks \(sample): \(metrics.output)")
            }
            #expect(metrics.output.contains("\ncorral_lease_remaining_seconds "))
            // node1 recorded the history: node3 left and came back, the five VMs added.
            let history = cluster.corral(1, "events", "--last", "100")
            #expect((1...5).allSatisfy { k in history.output.contains("vm         late\(k)  added") }, "corral events on node1: \(history.output)")
            #expect(history.output.contains("membership cluster  members node1, node2; quorate"), "corral events on node1: \(history.output)")
        }
    }

    @Test func corruptStateFileIsReportedAndRecoveredFromPeers() throws {
        try Self.withCluster(nodes: 3) { cluster in
            for k in 1...3 { cluster.corral(1, "vm", "add", "keep\(k)", "--memory", "256") }
            _ = try cluster.waitForAgreement([1, 2, 3], members: 3)
            cluster.crash(2)
            let stateFile = cluster.base + "/n2/state/state.bin"
            try Data("this is not a Corral state file".utf8).write(to: URL(fileURLWithPath: stateFile))
            cluster.start(2)
            let report = try cluster.waitForAgreement([1, 2, 3], members: 3)
            #expect(report.vms.count == 3)
            #expect(cluster.file(2, "corrald.log").contains("is unreadable"), "corrald should say the state file was unreadable")
        }
    }
}
