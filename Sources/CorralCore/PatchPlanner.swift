/// What an operator asks a patch run to do: its options, and the order in node names.
public struct PatchRequest: Codable, Sendable, Equatable {
    public var options: PatchOptions
    /// Node names in patch order; empty: every node, fewest VMs first.
    public var order: [String]

    public init(_ options: PatchOptions, order: [String] = []) {
        self.options = options
        self.order = order
    }
}

/// Turns a patch request into the run it starts (or a specific refusal, nothing changed),
/// and checks, before each node's turn, that the cluster can do without that node.
public enum PatchPlanner {
    /// Whether a node may be patched now.
    public enum Check: Sendable, Equatable {
        case ready
        /// Not online: passed over, not counted as failed.
        case skip(String)
        /// Patching it now would cost quorum, capacity or a keep-running budget.
        case refuse(String)
    }

    public static func command(for request: PatchRequest, in state: ClusterState) -> Result<Command, RequestRefusal> {
        if let run = state.patchRun, run.state == .running {
            return .failure(.init("patch run \(run.id) is running (corral patch status); stop it with corral patch abort, "
                                  + "or clear a stale one with corral patch abort --force-recover"))
        }
        let options = request.options
        if options.hook.isEmpty { return .failure("a patch run needs --hook CMD") }
        if options.retries < 0 || options.maxFailed.map({ $0 < 0 }) ?? false { return .failure("--retries and --max-failed take a whole number ≥ 0") }
        if options.rebootTimeoutMs <= 0 { return .failure("--reboot-timeout must be longer than 0") }
        var order: [NodeID] = []
        for name in request.order {
            guard let node = state.node(named: name) else {
                return .failure(.init("no node named \(name) in --order (nodes: \(state.sortedNodes.map(\.name).joined(separator: ", ")))"))
            }
            if order.contains(node.id) { return .failure(.init("node \(name) is named twice in --order")) }
            order.append(node.id)
        }
        if order.isEmpty { order = fewestVMsFirst(state) }
        if order.isEmpty { return .failure("the cluster has no nodes to patch") }
        for (group, count) in options.keepRunning.sorted(by: { $0.key < $1.key }) {
            if count < 1 { return .failure(.init("--keep-running \(group)=\(count): the count must be at least 1")) }
            if !state.vms.values.contains(where: { $0.spec.antiAffinityClass == group }) {
                return .failure(.init("--keep-running \(group): no VM has anti-affinity class \(group)"))
            }
        }
        if options.requireAllOnline, let down = state.sortedNodes.first(where: { $0.health != .up }) {
            return .failure(.init("--require-all-online: node \(down.name) is \(down.state.rawValue)"))
        }
        return .success(.startPatchRun(PatchRun(id: (state.patchRun?.id ?? 0) + 1, options: options, order: order)))
    }

    /// The plan, node by node, as the cluster stands now (each node is checked again when its
    /// turn comes, after the earlier ones have been resumed).
    public static func whatIf(_ request: PatchRequest, in state: ClusterState) -> Result<[String], RequestRefusal> {
        switch command(for: request, in: state) {
        case let .failure(refusal): return .failure(refusal)
        case let .success(command):
            guard case let .startPatchRun(run) = command else { return .failure("not a patch run") }
            let members = state.sortedNodes.filter { $0.health == .up }.map(\.id)
            var lines = ["would patch \(run.nodes.count) node(s) in this order: \(run.nodes.map { state.nodeName($0.node) }.joined(separator: ", "))"
                         + "; stop after more than \(run.maxFailed) failed; \(run.options.retries) retries per node"]
            for progress in run.nodes {
                let name = state.nodeName(progress.node)
                switch check(progress.node, in: state, options: run.options, members: members) {
                case .ready:
                    let moves = DrainPlanner.plan(state, node: progress.node).moves
                    lines.append("\(name): drain live (" + (moves.isEmpty ? "no VMs" : moves.map { "\($0.vm) → \(state.nodeName($0.destination))" }.joined(separator: ", "))
                                 + "), run the hook, wait up to \(run.options.rebootTimeoutMs / 1000) s for it to come back, resume"
                                 + (run.options.failback ? " with failback" : ""))
                case let .skip(why): lines.append("\(name): would be skipped: \(why)")
                case let .refuse(why): lines.append("\(name): would fail its pre-check: \(why)")
                }
            }
            return .success(lines)
        }
    }

    /// Quorum must survive the node's absence, every one of its VMs must have a place to go
    /// (capacity, anti-affinity) and each keep-running group must stay on enough nodes.
    public static func check(_ node: NodeID, in state: ClusterState, options: PatchOptions, members: [NodeID]) -> Check {
        guard let target = state.nodes[node], target.health == .up, members.contains(node) else {
            return .skip("\(state.nodeName(node)) is not online")
        }
        if options.requireAllOnline, let down = state.sortedNodes.first(where: { $0.health != .up || !members.contains($0.id) }) {
            return .refuse("--require-all-online: \(down.name) is not online")
        }
        let staying = members.filter { $0 != node }.count
        guard staying * 2 > state.settings.expectedVotes else {
            return .refuse("quorum would not survive its absence (\(staying) of \(state.settings.expectedVotes) votes left)")
        }
        if target.admin == .draining { return .refuse("it is already being drained") }
        let plan = DrainPlanner.plan(state, node: node)
        if !plan.unplaceable.isEmpty { return .refuse("the other nodes cannot take its VMs: " + plan.unplaceable.joined(separator: "; ")) }
        for (group, needed) in options.keepRunning.sorted(by: { $0.key < $1.key }) {
            var hosts = Set(state.vms.values.filter { $0.spec.antiAffinityClass == group && $0.occupiesNode && $0.node != node }.compactMap(\.node))
            for move in plan.moves where state.vms[move.vm]?.spec.antiAffinityClass == group { hosts.insert(move.destination) }
            if hosts.count < needed {
                return .refuse("--keep-running \(group)=\(needed): its VMs would run on \(hosts.count) node(s) while it is out")
            }
        }
        return .ready
    }

    /// Every node, the ones running the fewest VMs first (ties by id).
    static func fewestVMsFirst(_ state: ClusterState) -> [NodeID] {
        let load = NodeLoad(state)
        return state.sortedNodes.sorted { (load.usage[$0.id]?.vmCount ?? 0, $0.id) < (load.usage[$1.id]?.vmCount ?? 0, $1.id) }.map(\.id)
    }
}
