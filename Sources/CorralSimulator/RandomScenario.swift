import CorralCore

/// Random clusters and fault schedules for the simulation campaign: crashes, partitions
/// (minority and majority splits), hangs, VM crashes, and drains, moves and VM changes issued
/// in the middle of them. Everything heals before the end so liveness can be checked.
public enum RandomScenario {
    /// `shellFaults`: also draw faults of the agent's shell (multicast and stop failures, a
    /// watchdog that refuses, a frozen agent whose Corosync runs on, a lease lowered during a
    /// partition, a crash right at a switchover, slow fence agents).
    public static func make(nodes nodeCount: Int, vms vmCount: Int, seed: UInt64, faults: Int = 10,
                            shellFaults: Bool = false) -> Scenario {
        var rng = SplitMix64(seed: seed ^ 0xC0_22A1)
        func pick(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
        let names = (1...nodeCount).map { "n\($0)" }
        // Every VM must fit on any majority of the nodes, so liveness is always achievable.
        let majority = nodeCount / 2 + 1
        let nodeMemory = 32_768
        let budget = majority * nodeMemory * 6 / 10
        // Dense clusters (many VMs a node) get smaller guests rather than fewer: the sizes are
        // scaled down until the requested count fits the budget on average (at least 128 MiB).
        let sizes = [512, 1024, 2048, 4096]
        let averageSize = sizes.reduce(0, +) / sizes.count
        let scale = min(1.0, Double(budget) / Double(max(1, vmCount) * averageSize))
        let memoryChoices = sizes.map { max(128, Int(Double($0) * scale) / 64 * 64) }
        var vms: [Scenario.VMConfig] = []
        var used = 0
        for i in 1...max(1, vmCount) {
            let memory = memoryChoices[pick(0...3)]
            guard used + memory <= budget else { break }
            used += memory
            let preferred = pick(0...2) == 0 ? [] : Array(names.shuffled(using: &rng).prefix(pick(1...2)))
            let spec = VMSpec(name: "vm\(i)", memoryMiB: memory, vcpus: pick(1...4),
                              priority: Priority.allCases[pick(0...2)], preferredOwners: preferred,
                              antiAffinityClass: pick(0...3) == 0 ? "class\(pick(1...3))" : nil,
                              highlyAvailable: pick(0...9) > 0, disks: pick(0...1) == 0 ? ["/csv/vm\(i).img"] : [])
            vms.append(.init(spec: spec, dirtyRateMiBps: pick(0...60), running: pick(0...9) > 0))
        }
        var events: [ScenarioEvent] = []
        let window: ClosedRange<Int> = 5_000...60_000
        var added = 0
        for _ in 0..<faults {
            let at = Int64(pick(window))
            let node = names[pick(0...nodeCount - 1)]
            let later = at + Int64(pick(1_000...15_000))
            let vm = vms.isEmpty ? "vm1" : vms[pick(0...vms.count - 1)].spec.name
            if shellFaults, pick(0...2) == 0 {
                events += shellFault(at: at, later: later, node: node, names: names, pick: pick)
                continue
            }
            switch pick(0...10) {
            case 0, 1:
                events += [.init(atMs: at, .crash(node)), .init(atMs: later, .powerOn(node))]
            case 2, 3:
                let split = names.shuffled(using: &rng)
                let cut = pick(1...max(1, nodeCount / 2))
                events += [.init(atMs: at, .partition([Array(split.prefix(cut)), Array(split.dropFirst(cut))])), .init(atMs: later, .heal)]
            case 4:
                events += [.init(atMs: at, .hang(node)), .init(atMs: at + Int64(pick(500...6_000)), .resume(node))]
            case 5:
                events.append(.init(atMs: at, .crashVM(vm)))
            case 6, 7:
                events += [.init(atMs: at, .request(.drainNode(node), via: nil)),
                           .init(atMs: later, .request(.resumeNode(node, failback: pick(0...1) == 0), via: nil))]
            case 8:
                events.append(.init(atMs: at, .request(.moveVM(vm, to: pick(0...1) == 0 ? nil : node), via: nil)))
            case 9:
                added += 1
                let spec = VMSpec(name: "extra\(added)", memoryMiB: 512, preferredOwners: [node])
                events.append(.init(atMs: at, .request(.addVM(spec, start: true), via: names[pick(0...nodeCount - 1)])))
            default:
                events += [.init(atMs: at, .request(.stopVM(vm), via: nil)), .init(atMs: later, .request(.startVM(vm), via: nil))]
            }
        }
        // Heal everything, power everything on, resume every node, then let it settle.
        let end: Int64 = 80_000
        events.append(.init(atMs: end, .heal))
        for n in names {
            events.append(.init(atMs: end, .resume(n)))
            events.append(.init(atMs: end, .powerOn(n)))
            events.append(.init(atMs: end + 5_000, .request(.resumeNode(n, failback: false), via: nil)))
        }
        if shellFaults, pick(0...1) == 0 { events.append(.init(atMs: 1_000, .fenceAgentDelay(Int64(pick(200...12_000))))) }
        var timing = Scenario.Timing()
        timing.settleMs = 40_000
        var settings = ClusterSettings()
        settings.migration.streamMiBps = 400
        if shellFaults {
            settings.recovery.fenceAgent = pick(0...1) == 0
            timing.quorumLagMs = Int64([0, 5, 40][pick(0...2)])
        }
        return Scenario(name: "random-\(nodeCount)n-\(vmCount)vm\(shellFaults ? "-shell" : "")", nodes: names.map {
            .init(name: $0, capacity: Capacity(memoryMiB: nodeMemory, vcpus: 32), linkMiBps: 1_100)
        }, vms: vms, settings: settings, timing: timing, events: events)
    }

    /// One fault of the agent's shell, healed by `later` where it lasts.
    private static func shellFault(at: Int64, later: Int64, node: String, names: [String],
                                   pick: (ClosedRange<Int>) -> Int) -> [ScenarioEvent] {
        switch pick(0...7) {
        case 0: return [.init(atMs: at, .multicastFailures(node, percent: [20, 50, 100][pick(0...2)], untilMs: later))]
        case 7: return [.init(atMs: at, .garble(node))]
        case 1: return [.init(atMs: at, .stopFailures(node, untilMs: later))]
        case 2: return [.init(atMs: at, .watchdogFails(node)),
                        .init(atMs: later, .request(.resumeNode(node, failback: false), via: nil))]
        case 3: return [.init(atMs: at, .hangAgent(node)), .init(atMs: at + Int64(pick(500...12_000)), .resume(node))]
        case 4:
            // The lease is lowered while a node is cut off: it keeps the longer lease it holds.
            let cut = [names[pick(0...names.count - 1)]]
            return [.init(atMs: at, .request(.setConfig(key: "fencing.lease-ms", value: "30000"), via: nil)),
                    .init(atMs: at + 3_000, .request(.setConfig(key: "fencing.lease-ms", value: "\(pick(2_000...5_000))"), via: nil)),
                    .init(atMs: at + 3_100, .partition([cut, names.filter { !cut.contains($0) }])),
                    .init(atMs: later + 20_000, .heal)]
        case 5: return [.init(atMs: at, .crashAfterSwitchover(node)), .init(atMs: at, .request(.drainNode(node), via: nil)),
                        .init(atMs: later + 20_000, .powerOn(node))]
        default: return [.init(atMs: at, .fenceAgentDelay(Int64(pick(200...12_000))))]
        }
    }
}
