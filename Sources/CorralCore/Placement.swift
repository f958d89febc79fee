/// Where a VM should run. Rules in order of strength: never over-commit memory (hard);
/// keep anti-affinity classes apart while any other placement exists; honour preferred
/// owners in order; otherwise spread by most free memory; ties go to the lowest node id.
public enum Placement {
    /// Picks a node for `spec` among nodes that accept VMs, or says why none fits.
    /// `avoid` is skipped unless nothing else fits (a node the VM just crashed on).
    public static func choose(_ spec: VMSpec, state: ClusterState, load: NodeLoad,
                              candidates: [Node], avoid: NodeID? = nil) -> Result<NodeID, PlacementFailure> {
        let overcommit = state.settings.placement.vcpuOvercommit
        var best: (key: (Int, Int, Int, Int, NodeID), id: NodeID)?
        for node in candidates where load.fits(spec, on: node, vcpuOvercommit: overcommit) && state.storageAllows(spec, on: node.id) {
            let conflict = load.hostsClass(spec.antiAffinityClass, on: node.id) ? 1 : 0
            let avoided = node.id == avoid ? 1 : 0
            let rank = spec.preferredOwners.firstIndex(of: node.name) ?? Int.max
            let key = (avoided, conflict, rank, -load.freeMemory(node), node.id)
            if best == nil || key < best!.key { best = (key, node.id) }
        }
        if let best { return .success(best.id) }
        if !candidates.isEmpty, !candidates.contains(where: { state.storageAllows(spec, on: $0.id) }) {
            return .failure(.noNodeSeesStorage(state.volumes(of: spec).map(\.name)))
        }
        return .failure(failure(for: spec, load: load, candidates: candidates))
    }

    /// Nodes that take new VMs, in id order.
    public static func candidates(_ state: ClusterState, excluding: NodeID? = nil) -> [Node] {
        state.sortedNodes.filter { $0.acceptsVMs && $0.id != excluding }
    }

    private static func failure(for spec: VMSpec, load: NodeLoad, candidates: [Node]) -> PlacementFailure {
        guard !candidates.isEmpty else { return .noNodeAcceptsVMs }
        let roomiest = candidates.max { (load.freeMemory($0), $1.id) < (load.freeMemory($1), $0.id) }!
        if load.freeMemory(roomiest) >= spec.memoryMiB { return .noVCPUs(needed: spec.vcpus) }
        return .noMemory(needed: spec.memoryMiB, largestFree: load.freeMemory(roomiest), on: roomiest.name)
    }
}

/// Why a VM could not be placed; its text is what operators see as the pending reason.
public enum PlacementFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case noNodeAcceptsVMs
    case noMemory(needed: Int, largestFree: Int, on: String)
    case noVCPUs(needed: Int)
    /// No node that takes VMs sees every volume the VM's disks are on (or one is in maintenance).
    case noNodeSeesStorage([String])

    public var description: String {
        switch self {
        case .noNodeAcceptsVMs:
            "no node accepts VMs (every other node is down, fencing, paused or draining)"
        case let .noMemory(needed, largestFree, on):
            "no node has \(needed) MiB free (largest free: \(max(0, largestFree)) MiB on \(on))"
        case let .noVCPUs(needed):
            "no node has room for \(needed) more vCPUs"
        case let .noNodeSeesStorage(volumes):
            "no node that takes VMs sees volume\(volumes.count == 1 ? "" : "s") \(volumes.joined(separator: ", ")) online"
        }
    }
}
