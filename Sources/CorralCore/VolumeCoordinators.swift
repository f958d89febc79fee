/// Who coordinates each shared volume. Chosen by the cluster coordinator, deterministically:
/// the up node that sees the volume and coordinates the fewest volumes, ties to the lowest id,
/// so the roles spread evenly over the members.
///
/// A coordinator that left is replaced only once it is fenced or known down (a node that left
/// in the middle of a disk operation is `fencing` until then): the two never run the volume's
/// operations at the same time. A move on request is a handoff instead (`handoffTo`): the
/// current coordinator passes the role on when no operation of the volume runs on it.
public enum VolumeCoordinators {
    public static func decide(_ state: ClusterState) -> [Command] {
        let shared = state.sortedVolumes.filter { $0.kind == .shared }
        guard !shared.isEmpty else { return [] }
        var count: [NodeID: Int] = [:]
        for volume in shared { if let c = volume.coordinator { count[c, default: 0] += 1 } }
        var commands: [Command] = []
        for volume in shared {
            let current = volume.coordinator.flatMap { state.nodes[$0] }
            if let current, current.health == .fencing { continue }
            if let current, current.health == .up, volume.isVisible(from: current.id) {
                // A handoff to a node that is gone or lost the volume is called off.
                if let target = volume.handoffTo, !(state.nodes[target]?.health == .up && volume.isVisible(from: target)) {
                    commands.append(.assignVolumeCoordinator(volume.name, to: current.id))
                }
                continue
            }
            guard let chosen = leastBusy(state, seeing: volume, count: count) else { continue }
            if let old = volume.coordinator { count[old, default: 1] -= 1 }
            count[chosen, default: 0] += 1
            commands.append(.assignVolumeCoordinator(volume.name, to: chosen))
        }
        if commands.isEmpty, let move = rebalance(state, shared, count: count) { commands.append(move) }
        return commands
    }

    /// One handoff at a time from the busiest coordinator to the least busy node, while their
    /// counts differ by more than one (a node that joined, or came back after a failover).
    private static func rebalance(_ state: ClusterState, _ shared: [Volume], count: [NodeID: Int]) -> Command? {
        guard !shared.contains(where: { $0.handoffTo != nil || $0.coordinator == nil }) else { return nil }
        for volume in shared.sorted(by: { (count[$0.coordinator!] ?? 0, $1.name) > (count[$1.coordinator!] ?? 0, $0.name) }) {
            guard let target = leastBusy(state, seeing: volume, count: count) else { continue }
            if (count[volume.coordinator!] ?? 0) - (count[target] ?? 0) > 1 { return .moveVolumeCoordinator(volume.name, to: target) }
        }
        return nil
    }

    private static func leastBusy(_ state: ClusterState, seeing volume: Volume, count: [NodeID: Int]) -> NodeID? {
        state.sortedNodes.filter { $0.health == .up && volume.isVisible(from: $0.id) }
            .min { (count[$0.id] ?? 0, $0.id) < (count[$1.id] ?? 0, $1.id) }?.id
    }
}
