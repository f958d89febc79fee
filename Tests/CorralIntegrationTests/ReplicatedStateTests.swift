import CorralAgent
import Foundation
import Testing

/// Real Corosync nodes in network namespaces with real corrald agents: the replicated state
/// stays identical across members through concurrent commands, crashes, partitions and restarts.
@Suite(.serialized, .enabled(if: LocalCluster.canRun, "needs root and a built corrald"))
struct ReplicatedStateTests {
    @Test(arguments: [3, 5])
    func concurrentCommandsOnEveryNodeGiveOneState(nodes: Int) throws {
        try LocalCluster.withCluster(nodes: nodes) { cluster in
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
        try LocalCluster.withCluster(nodes: nodes) { cluster in
            cluster.corral(1, "vm", "add", "web", "--memory", "1024", "--preferred", "node2")
            try cluster.waitUntil("web runs on node2") { cluster.status(1)?.vms.first?.node == "node2" }
            cluster.kill(2)
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
        try LocalCluster.withCluster(nodes: nodes) { cluster in
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
        try LocalCluster.withCluster(nodes: 3) { cluster in
            cluster.kill(3)
            _ = try cluster.waitForAgreement([1, 2], members: 2)
            for k in 1...5 { #expect(cluster.corral(1, "vm", "add", "late\(k)", "--memory", "256").status == 0) }
            cluster.start(3)
            let report = try cluster.waitForAgreement([1, 2, 3], members: 3)
            #expect(report.vms.count == 5)
        }
    }

    @Test func corruptStateFileIsReportedAndRecoveredFromPeers() throws {
        try LocalCluster.withCluster(nodes: 3) { cluster in
            for k in 1...3 { cluster.corral(1, "vm", "add", "keep\(k)", "--memory", "256") }
            _ = try cluster.waitForAgreement([1, 2, 3], members: 3)
            cluster.kill(2)
            let stateFile = cluster.nodeDirectory + "/n2/state/state.bin"
            try Data("this is not a Corral state file".utf8).write(to: URL(fileURLWithPath: stateFile))
            cluster.start(2)
            let report = try cluster.waitForAgreement([1, 2, 3], members: 3)
            #expect(report.vms.count == 3)
            let log = (try? String(contentsOfFile: cluster.nodeDirectory + "/n2/corrald.log", encoding: .utf8)) ?? ""
            #expect(log.contains("is unreadable"), "corrald should say the state file was unreadable")
        }
    }
}
