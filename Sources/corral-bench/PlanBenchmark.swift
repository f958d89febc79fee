import CorralCore
import CorralSimulator
import Foundation

/// `corral-bench plan`: a full drain plan and a full failover plan for 64 nodes × 8,000 VMs.
enum PlanBenchmark {
    static let nodes = 64
    static let vms = 8_000

    /// A busy cluster: 8,000 VMs of 1–8 GiB spread over 64 nodes, with preferences and classes.
    static func cluster() -> ClusterState {
        var state = ClusterState(settings: ClusterSettings(expectedVotes: nodes))
        for i in 1...nodes {
            _ = state.apply(.registerNode(NodeSpec(id: NodeID(i), name: "node\(i)", capacity: Capacity(memoryMiB: 1_048_576, vcpus: 128), linkMiBps: 2_380)))
        }
        var rng = SplitMix64(seed: 64)
        for i in 1...vms {
            let spec = VMSpec(name: "vm\(i)", memoryMiB: 1024 * Int(1 + rng.next() % 8), vcpus: Int(1 + rng.next() % 4),
                              priority: Priority.allCases[Int(rng.next() % 3)],
                              preferredOwners: ["node\(1 + rng.next() % UInt64(nodes))"],
                              antiAffinityClass: i % 10 == 0 ? "class\(i % 50)" : nil)
            _ = state.apply(.addVM(spec, running: true, dirtyRateMiBps: Int(rng.next() % 50)))
        }
        for command in Coordinator.recovery(state) { _ = state.apply(command) }
        for vm in state.sortedVMs where vm.state == .starting { _ = state.apply(.vmStarted(vm: vm.name, on: vm.node!, leaseTokens: [])) }
        return state
    }

    static func run(json: Bool) {
        let state = cluster()
        let victim: NodeID = 7
        var draining = state
        _ = draining.apply(.drainNode(victim))
        var failed = state
        failed.applyMembership(state.sortedNodes.map(\.id).filter { $0 != victim })
        _ = failed.apply(.declareFenced(victim, method: "bench"))
        let onVictim = state.vms.values.filter { $0.node == victim }.count
        var drainCommands = 0, failoverCommands = 0
        let drain = median(runs: 21) { drainCommands = Coordinator.plan(draining, .init(now: 0)).count }
        let failover = median(runs: 21) { failoverCommands = Coordinator.plan(failed, .init(now: 0)).count }
        let rss = peakResidentMiB()
        if json {
            print("{\"nodes\":\(nodes),\"vms\":\(vms),\"vmsOnLostNode\":\(onVictim),\"drainPlanMs\":\(fmt(drain)),\"drainCommands\":\(drainCommands),"
                + "\"failoverPlanMs\":\(fmt(failover)),\"failoverCommands\":\(failoverCommands),\"peakRssMiB\":\(fmt(rss))}")
        } else {
            print("plan: \(nodes) nodes × \(vms) VMs (\(onVictim) on the node drained / lost), median of 21 runs, one core")
            print("  full drain plan      \(fmt(drain)) ms  (\(drainCommands) commands)")
            print("  full failover plan   \(fmt(failover)) ms  (\(failoverCommands) commands)")
            print("  peak resident memory \(fmt(rss)) MiB")
        }
    }

    static func median(runs: Int, _ body: () -> Void) -> Double {
        var times: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return times.sorted()[runs / 2]
    }
}

func fmt(_ x: Double) -> String { String(format: "%.2f", x) }

/// VmHWM from /proc/self/status: the most memory this process has held.
func peakResidentMiB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kb / 1024
}
