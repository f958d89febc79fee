import CorralCore

/// Checks DESIGN §3 against the simulated world's truth (hypervisors), not our bookkeeping.
/// Kept apart from the code under test: it only reads.
struct InvariantChecker {
    /// Highest lease token each node's state has shown per disk: tokens must only grow.
    private var tokens: [NodeID: [String: UInt64]] = [:]

    /// 2. One exclusive holder per disk, tokens that only grow.
    mutating func afterStep(_ sim: Simulation, _ node: NodeID) {
        guard let core = sim.hosts[node]?.core, !core.state.leases.isEmpty else { return }
        for lease in core.state.leases.values.sorted(by: { $0.disk < $1.disk }) {
            if lease.mode == .exclusive && lease.holders.count > 1 {
                sim.violation("\(lease.disk) has \(lease.holders.count) exclusive holders in \(sim.name(node))'s state")
            }
            let seen = tokens[node, default: [:]][lease.disk] ?? 0
            if lease.token < seen {
                sim.violation("lease token of \(lease.disk) went back from \(seen) to \(lease.token) on \(sim.name(node))")
            }
            tokens[node, default: [:]][lease.disk] = max(seen, lease.token)
        }
    }

    /// 1. A VM runs on at most one node at any instant.
    func onRunning(_ sim: Simulation, _ vm: String, on node: NodeID) {
        let hosts = sim.ids.filter { sim.hosts[$0]!.running.contains(vm) }
        if hosts.count > 1 { sim.violation("\(vm) runs on \(hosts.map(sim.name).joined(separator: " and ")) at once") }
    }

    /// 4. Only a quorate, synced node with a live lease starts a VM, and only with its disk leases.
    func onStart(_ sim: Simulation, _ node: NodeID, _ spec: VMSpec) {
        let core = sim.hosts[node]!.core
        if !core.canAct { sim.violation("\(sim.name(node)) started \(spec.name) without quorum or lease") }
        for disk in spec.disks where !(core.state.leases[disk]?.holders.contains(node) ?? false) {
            sim.violation("\(sim.name(node)) started \(spec.name) without the lease on \(disk)")
        }
    }

    func onMigrate(_ sim: Simulation, _ node: NodeID, _ job: MigrationJob) {
        if !sim.hosts[node]!.core.canAct { sim.violation("\(sim.name(node)) migrated \(job.vm) without quorum or lease") }
    }

    /// 5. No request stops a VM that should run: only self-fencing and stray copies are stopped.
    func onStop(_ sim: Simulation, _ node: NodeID, _ vm: String) {
        let core = sim.hosts[node]!.core
        guard core.canAct, let record = core.state.vms[vm], record.node == node else { return }
        if record.desiredRunning && record.state != .stopping {
            sim.violation("\(sim.name(node)) stopped \(vm), which should run (state \(record.state.rawValue))")
        }
    }

    /// 3. Fenced means off: nothing of the node may still run when it is declared fenced.
    func onFenced(_ sim: Simulation, _ node: NodeID, method: String) {
        guard let h = sim.hosts[node], h.alive, !h.running.isEmpty || !h.booting.isEmpty else { return }
        sim.violation("\(sim.name(node)) declared fenced (\(method)) while it still runs \(h.running.union(h.booting.keys).sorted().joined(separator: ","))")
    }

    /// 6. After the faults heal: every VM that should run runs exactly once, and all agree.
    func atEnd(_ sim: Simulation) {
        let live = sim.ids.filter { sim.hosts[$0]!.alive && !sim.hosts[$0]!.hung }
        guard live.count * 2 > sim.scenario.nodes.count else { return }
        guard let authority = sim.authority else { return sim.violation("no quorate coordinator at the end of the run") }
        for vm in authority.state.sortedVMs where vm.desiredRunning && vm.state != .failed {
            let hosts = sim.ids.filter { sim.hosts[$0]!.running.contains(vm.name) }
            if hosts.count == 1 { continue }
            if vm.state == .pending && vm.reason.hasPrefix("no node") { continue }
            sim.violation("\(vm.name) should run but runs on \(hosts.count) nodes (state \(vm.state.rawValue): \(vm.reason))")
        }
        let digests = Set(live.map { sim.hosts[$0]!.core.state.digest })
        if digests.count > 1 { sim.violation("nodes disagree on the state: \(digests.count) different digests") }
    }
}
