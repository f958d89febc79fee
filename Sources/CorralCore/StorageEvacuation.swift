/// A node that lost its path to a volume (its periodic look failed) keeps running the VMs on
/// that volume only until they have moved, live, to nodes that still see all their volumes;
/// placement no longer chooses it for them meanwhile (`ClusterState.storageAllows`).
public enum StorageEvacuation {
    public static func decide(_ state: ClusterState) -> [Command] {
        guard state.volumes.values.contains(where: { !$0.unreachableFrom.isEmpty }) else { return [] }
        var load = NodeLoad(state)
        var commands: [Command] = []
        for vm in state.sortedVMs where vm.state == .running && state.activeJob(for: vm.name) == nil {
            guard let node = vm.node, state.volumes(of: vm.spec).contains(where: { $0.unreachableFrom.contains(node) }) else { continue }
            let failed = state.sortedJobs.filter { $0.vm == vm.name && $0.source == node && $0.purpose == .storage && $0.state == .failed }
            guard failed.count < max(1, state.settings.migration.maxAttempts) else { continue }
            if case let .success(destination) = Placement.choose(vm.spec, state: state, load: load,
                                                                  candidates: Placement.candidates(state, excluding: node)) {
                load.add(vm.spec, to: destination)
                commands.append(.queueMigration(vm: vm.name, to: destination, purpose: .storage))
            }
        }
        return commands
    }
}
