/// Where the VMs of nodes that are being fenced, or that Corosync's link heartbeat already
/// cannot reach, will restart once those nodes are fenced: the coordinator's own recovery
/// placement, run on a copy of the state in which they are. Survivors use it to stage those
/// guests paused while fencing is still being confirmed, so the start itself costs only a resume.
public enum FailoverForecast {
    /// VM name → the node the recovery would start it on, for the VMs now on `lost` nodes.
    public static func placements(_ state: ClusterState, losing lost: Set<NodeID>) -> [String: NodeID] {
        guard !lost.isEmpty else { return [:] }
        var future = state
        future.applyMembership(state.sortedNodes.filter { $0.health == .up && !lost.contains($0.id) }.map(\.id))
        for id in lost.sorted() { _ = future.apply(.declareFenced(id, method: "forecast")) }
        var placements: [String: NodeID] = [:]
        for command in Coordinator.recovery(future) {
            if case let .place(vm, node) = command, let from = state.vms[vm]?.node, lost.contains(from) { placements[vm] = node }
        }
        return placements
    }
}
