/// The decisions of the coordinator (the lowest node id of the quorate membership): fencing,
/// placement and failover, drains, migration admission. A pure function of the replicated
/// state plus what this node alone knows (when it saw nodes leave, what a fence agent said),
/// so a new coordinator continues exactly where the old one stopped.
public enum Coordinator {
    public struct Context: Sendable {
        public var now: Millis
        /// For each node, the latest local time at which its self-fence lease may end: from the
        /// lease each heartbeat seen here carried, or from the start of our unbroken quorate
        /// run plus the longest lease it was ever granted (before that run, a quorate partition
        /// we were not in may have renewed it). A node missing here is never fenced by lease.
        public var leaseEnds: [NodeID: Millis]
        /// Nodes a fence agent confirmed off.
        public var fenceConfirmed: Set<NodeID>
        /// Members of the current membership (a silent member is fenced by its lease too).
        public var members: [NodeID]
        /// VMs seen running without a crash for a whole crash window.
        public var stableVMs: [String]
        /// How long this coordinator has seen the patch run's current step (0 without a run).
        public var stepElapsedMs: Millis
        public init(now: Millis, leaseEnds: [NodeID: Millis] = [:], fenceConfirmed: Set<NodeID> = [],
                    members: [NodeID] = [], stableVMs: [String] = [], stepElapsedMs: Millis = 0) {
            self.now = now
            self.leaseEnds = leaseEnds
            self.fenceConfirmed = fenceConfirmed
            self.members = members
            self.stableVMs = stableVMs
            self.stepElapsedMs = stepElapsedMs
        }
    }

    public static func plan(_ state: ClusterState, _ context: Context) -> [Command] {
        var commands = fencing(state, context)
        commands += context.stableVMs.filter { state.vms[$0]?.crashCount ?? 0 > 0 }.map { .forgiveCrashes(vm: $0) }
        commands += recovery(state)
        commands += drains(state)
        commands += MigrationScheduler.decide(state)
        commands += PatchConductor.decide(state, context)
        commands += VolumeCoordinators.decide(state)
        commands += StorageEvacuation.decide(state)
        return commands
    }

    /// A node that left holding VMs is fenced once a fence agent confirms it, or once its
    /// self-fence lease has surely run out: margin after the latest its lease may end.
    /// A member that holds VMs but has gone silent that long (a hung agent) is fenced the same
    /// way: its lease ran out, so it stopped its VMs or its watchdog reset it.
    /// A lost node that a live member is still migrating a guest to waits for that source's
    /// answer first (the source aborts it): a guest that switched over after the node's lease
    /// ran out would not be covered by it.
    static func fencing(_ state: ClusterState, _ context: Context) -> [Command] {
        let margin = Millis(state.settings.recovery.marginMs)
        func leaseOver(_ id: NodeID) -> Bool {
            guard let end = context.leaseEnds[id] else { return false }
            return context.now >= end + margin
        }
        func incomingFromMember(_ id: NodeID) -> Bool {
            state.jobs.values.contains { $0.state == .running && $0.destination == id && context.members.contains($0.source) }
        }
        return state.sortedNodes.compactMap { node in
            switch node.health {
            case .fencing:
                if context.fenceConfirmed.contains(node.id) { return .declareFenced(node.id, method: "fence agent confirmed") }
                return leaseOver(node.id) && !incomingFromMember(node.id) ? .declareFenced(node.id, method: "self-fence lease expired") : nil
            case .up where context.members.contains(node.id) && state.holdsAnything(node.id) && leaseOver(node.id):
                return .declareFenced(node.id, method: "silent for a whole lease: its watchdog has reset it")
            default:
                return nil
            }
        }
    }

    /// Places every VM that should run and does not: high priority first, then by name.
    public static func recovery(_ state: ClusterState) -> [Command] {
        let pending = state.vms.values.filter { $0.state == .pending && $0.desiredRunning }
        guard !pending.isEmpty else { return [] }
        var load = NodeLoad(state)
        let candidates = Placement.candidates(state)
        var commands: [Command] = []
        for vm in pending.sorted(by: { ($1.spec.priority, $0.name) < ($0.spec.priority, $1.name) }) {
            switch choose(vm, state: state, load: load, candidates: candidates) {
            case let .success(node):
                load.add(vm.spec, to: node)
                commands.append(.place(vm: vm.name, on: node))
            case let .failure(why):
                if vm.reason != why.description { commands.append(.markPending(vm: vm.name, reason: why.description)) }
            }
        }
        return commands
    }

    /// A crashed VM restarts where it crashed while its restart budget lasts, elsewhere after.
    private static func choose(_ vm: VirtualMachine, state: ClusterState, load: NodeLoad, candidates: [Node]) -> Result<NodeID, PlacementFailure> {
        guard vm.crashCount > 0, let last = vm.lastCrashNode else {
            return Placement.choose(vm.spec, state: state, load: load, candidates: candidates)
        }
        if vm.crashCount <= state.settings.recovery.restartsInPlace,
           let node = candidates.first(where: { $0.id == last }),
           load.fits(vm.spec, on: node, vcpuOvercommit: state.settings.placement.vcpuOvercommit),
           state.storageAllows(vm.spec, on: last) {
            return .success(last)
        }
        return Placement.choose(vm.spec, state: state, load: load, candidates: candidates, avoid: last)
    }

    /// Moves the VMs off draining nodes, finishes a drain when the node is empty, and stops
    /// one (naming each VM and why) when a VM cannot go anywhere or keeps failing to move.
    static func drains(_ state: ClusterState) -> [Command] {
        let draining = state.sortedNodes.filter { $0.admin == .draining && $0.health == .up }
        guard !draining.isEmpty else { return [] }
        var commands: [Command] = []
        var load = NodeLoad(state)
        for node in draining {
            var failures: [String] = []
            for vm in state.sortedVMs where vm.node == node.id && vm.state == .running && state.activeJob(for: vm.name) == nil {
                let failed = state.sortedJobs.filter { $0.vm == vm.name && $0.source == node.id && $0.purpose == .drain
                    && $0.state == .failed && $0.id >= node.drainFirstJob }
                if failed.count >= max(1, state.settings.migration.maxAttempts) {
                    failures.append("\(vm.name): migration failed \(failed.count) times (last: \(failed.last!.failure))")
                }
            }
            let plan = DrainPlanner.plan(state, node: node.id, load: load)
            failures += plan.unplaceable.filter { line in !failures.contains { $0.hasPrefix(line.prefix { $0 != ":" } + ":") } }
            if !failures.isEmpty {
                commands.append(.failDrain(node.id, reasons: failures.sorted()))
                continue
            }
            for move in plan.moves where state.vms[move.vm]?.state == .running {
                if let spec = state.vms[move.vm]?.spec { load.add(spec, to: move.destination) }
                commands.append(.queueMigration(vm: move.vm, to: move.destination, purpose: .drain))
            }
            let busy = state.vms.values.contains { $0.node == node.id && $0.occupiesNode }
            if !busy { commands.append(.finishDrain(node.id)) }
        }
        return commands
    }
}
