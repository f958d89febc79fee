/// Checks storage requests before anything changes, with one specific message each. The
/// planner asks where the request arrives and the state machine asks again when it is
/// applied (another change may have come first), so both refuse the same way.
public enum VolumeValidation {
    public static func unknownVolume(_ name: String) -> String { "no volume named \(name)" }

    public static func nameProblem(_ name: String, what: String) -> String? {
        if name.isEmpty || name.count > VMSpecValidation.maxNameLength { return "\(what) name must be 1–\(VMSpecValidation.maxNameLength) characters" }
        if name.hasPrefix(".") { return "\(what) name \(name) must not start with '.'" }
        if let bad = name.unicodeScalars.first(where: { !VMSpecValidation.isNameCharacter($0) }) {
            return "\(what) name \(name) contains '\(bad)'; use letters, digits, '-', '_' and '.'"
        }
        return nil
    }

    static func additionProblem(_ volume: Volume, in state: ClusterState) -> String? {
        if let problem = nameProblem(volume.name, what: "volume") { return problem }
        if state.volumes[volume.name] != nil { return "a volume named \(volume.name) already exists" }
        guard volume.path.hasPrefix("/"), volume.path.count > 1 else { return "volume path \(volume.path) must be an absolute path other than /" }
        if volume.path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) { return "volume path \(volume.path) must not contain . or .." }
        let directory = volume.imagePath("")
        if let other = state.sortedVolumes.first(where: { $0.imagePath("").hasPrefix(directory) || directory.hasPrefix($0.imagePath("")) }) {
            return "volume path \(volume.path) overlaps volume \(other.name) (\(other.path))"
        }
        switch volume.kind {
        case .shared:
            if volume.owner != nil { return "a shared volume has no owner node" }
        case .local:
            guard let owner = volume.owner, state.nodes[owner] != nil else { return "a local volume needs the node whose directory it is (--node NAME)" }
        }
        return nil
    }

    static func removalProblem(_ volume: Volume, in state: ClusterState) -> String? {
        if !volume.disks.isEmpty {
            return "volume \(volume.name) still holds disks \(volume.disks.map(\.name).joined(separator: ", ")); delete them first"
        }
        if !volume.operations.isEmpty { return "volume \(volume.name) has \(volume.operations.count) disk operations pending" }
        if let vm = state.sortedVMs.first(where: { state.volumes(of: $0.spec).contains { $0.name == volume.name } }) {
            return "VM \(vm.name) uses volume \(volume.name)"
        }
        return nil
    }

    static func operationProblem(_ volume: Volume, disk: String, _ action: DiskOperation.Action, in state: ClusterState) -> String? {
        if let problem = nameProblem(disk, what: "disk") { return problem }
        guard volume.state == .online else { return "volume \(volume.name) is \(volume.state.rawValue)" }
        let ref = "\(volume.name)/\(disk)"
        if volume.operations.contains(where: { $0.disk == disk }) { return "disk \(ref) already has an operation pending; wait for it" }
        let existing = volume.disk(named: disk)
        let growth: Int
        switch action {
        case let .create(size, _):
            if existing != nil { return "disk \(ref) already exists" }
            guard size > 0 else { return "disk size must be positive, not \(size) MiB" }
            growth = size
        case let .resize(size, _):
            guard let existing else { return "no disk \(ref)" }
            guard size > existing.sizeMiB else {
                return "disk \(ref) is \(existing.sizeMiB) MiB; a resize only grows it (shrinking loses the guest's data), not to \(size) MiB"
            }
            growth = size - existing.sizeMiB
        case .delete:
            guard existing != nil else { return "no disk \(ref)" }
            let path = volume.imagePath(disk)
            if let user = state.sortedVMs.first(where: { $0.spec.disks.contains(path) }) { return "disk \(ref) belongs to VM \(user.name); remove the VM first" }
            if let lease = state.leases[path], !lease.holders.isEmpty { return "disk \(ref) is leased to \(state.nodeName(lease.holders.first))" }
            return nil
        }
        guard volume.capacityMiB > 0 else { return "free space of volume \(volume.name) is not known yet (its coordinator has not looked at it); retry" }
        let free = volume.freeMiB - volume.committedGrowthMiB
        if growth > free {
            return "volume \(volume.name) has \(max(0, free)) MiB free\(volume.committedGrowthMiB > 0 ? " after pending operations" : ""); \(ref) needs \(growth) MiB more"
        }
        return nil
    }
}
