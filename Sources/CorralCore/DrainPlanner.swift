/// Where every VM of a node goes when the node is drained. Used to refuse a drain up front
/// (with each VM that cannot go anywhere and why) and by the coordinator to queue the moves.
public enum DrainPlanner {
    public struct Move: Sendable, Equatable {
        public var vm: String
        public var destination: NodeID
    }
    public struct Plan: Sendable, Equatable {
        public var moves: [Move]
        /// "VM: reason" for every VM with no destination; a non-empty list refuses the drain.
        public var unplaceable: [String]
    }

    /// Plans the VMs on `node` that are not already moving. Big, important VMs pick first so
    /// small ones fill the gaps.
    public static func plan(_ state: ClusterState, node: NodeID, load: NodeLoad? = nil) -> Plan {
        var load = load ?? NodeLoad(state)
        let candidates = Placement.candidates(state, excluding: node)
        let vms = state.vms.values
            .filter { $0.node == node && $0.occupiesNode && state.activeJob(for: $0.name) == nil }
            .sorted { ($1.spec.priority, $1.spec.memoryMiB, $0.name) < ($0.spec.priority, $0.spec.memoryMiB, $1.name) }
        var plan = Plan(moves: [], unplaceable: [])
        for vm in vms {
            switch Placement.choose(vm.spec, state: state, load: load, candidates: candidates) {
            case let .success(dest):
                load.add(vm.spec, to: dest)
                plan.moves.append(Move(vm: vm.name, destination: dest))
            case let .failure(why):
                plan.unplaceable.append("\(vm.name): \(why)")
            }
        }
        return plan
    }
}
