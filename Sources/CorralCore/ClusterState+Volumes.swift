/// The storage part of the state machine: volumes, their coordinators and disk operations.
extension ClusterState {
    /// The volume whose directory holds `path` (a VM's disk), if any.
    public func volume(holding path: String) -> Volume? {
        sortedVolumes.first { path.hasPrefix($0.imagePath("")) }
    }

    /// The volumes a VM's disks lie on, by name.
    public func volumes(of spec: VMSpec) -> [Volume] {
        var seen: [Volume] = []
        for disk in spec.disks { if let v = volume(holding: disk), !seen.contains(where: { $0.name == v.name }) { seen.append(v) } }
        return seen
    }

    /// Whether a VM can run on `node` as far as its storage goes: every volume it uses is
    /// online and visible there. Disks outside any volume (plain shared paths) do not restrict it.
    public func storageAllows(_ spec: VMSpec, on node: NodeID) -> Bool {
        volumes(of: spec).allSatisfy { $0.state == .online && $0.isVisible(from: node) }
    }

    /// VMs that use a volume's images and run (or are starting, or migrating) somewhere.
    public func activeVMs(on volume: Volume) -> [VirtualMachine] {
        sortedVMs.filter { $0.occupiesNode && volumes(of: $0.spec).contains { $0.name == volume.name } }
    }

    mutating func applyStorage(_ command: Command) -> ApplyOutcome {
        switch command {
        case let .addVolume(volume): return addVolume(volume)
        case let .removeVolume(name):
            guard let volume = volumes[name] else { return .refused(VolumeValidation.unknownVolume(name)) }
            if let problem = VolumeValidation.removalProblem(volume, in: self) { return .refused(problem) }
            volumes[name] = nil
            return .applied
        case let .setVolumeState(name, newState, force): return setVolumeState(name, newState, force: force)
        case let .moveVolumeCoordinator(name, to): return moveVolumeCoordinator(name, to: to)
        case let .assignVolumeCoordinator(name, to):
            guard var volume = volumes[name] else { return .refused(VolumeValidation.unknownVolume(name)) }
            guard let node = nodes[to], node.health == .up, volume.isVisible(from: to) else {
                return .refused("\(nodeName(to)) cannot coordinate volume \(name): it is not up or does not see it")
            }
            guard volume.coordinator != to || volume.handoffTo != nil else { return .refused("\(node.name) already coordinates volume \(name)") }
            volume.coordinator = to
            volume.handoffTo = nil
            volumes[name] = volume
            return .applied
        case let .queueDiskOperation(name, disk, action): return queueDiskOperation(name, disk, action)
        case let .diskOperationFinished(id, name, outcome): return diskOperationFinished(id, name, outcome)
        case let .volumeProbed(name, node, probe): return volumeProbed(name, node, probe)
        default: return .refused("not a storage command")
        }
    }

    private mutating func addVolume(_ volume: Volume) -> ApplyOutcome {
        if let problem = VolumeValidation.additionProblem(volume, in: self) { return .refused(problem) }
        volumes[volume.name] = volume
        return .applied
    }

    private mutating func setVolumeState(_ name: String, _ newState: VolumeState, force: Bool) -> ApplyOutcome {
        guard let volume = volumes[name] else { return .refused(VolumeValidation.unknownVolume(name)) }
        guard volume.state != newState else { return .refused("volume \(name) is already \(newState.rawValue)") }
        let running = activeVMs(on: volume)
        if newState == .maintenance, !running.isEmpty {
            guard force else {
                return .refused("maintenance of volume \(name) would stop \(running.map(\.name).joined(separator: ", ")); "
                                + "nothing was changed (move them, or add --force to stop them)")
            }
            if let moving = running.first(where: { $0.state == .migrating }) {
                return .refused("VM \(moving.name) on volume \(name) is migrating; wait for the migration to end")
            }
            for vm in running { _ = stopVM(vm.name) }
        }
        volumes[name]!.state = newState
        return .applied
    }

    private mutating func moveVolumeCoordinator(_ name: String, to: NodeID) -> ApplyOutcome {
        guard var volume = volumes[name] else { return .refused(VolumeValidation.unknownVolume(name)) }
        guard volume.kind == .shared else { return .refused("volume \(name) is local to \(nodeName(volume.owner)); its owner coordinates it") }
        guard let node = nodes[to], node.health == .up else { return .refused("node \(nodeName(to)) is not up") }
        guard volume.isVisible(from: to) else { return .refused("node \(node.name) does not see volume \(name)") }
        guard volume.coordinator != to else { return .refused("\(node.name) already coordinates volume \(name)") }
        if volume.coordinator == nil { volume.coordinator = to } else { volume.handoffTo = to }
        volumes[name] = volume
        return .applied
    }

    private mutating func queueDiskOperation(_ name: String, _ disk: String, _ action: DiskOperation.Action) -> ApplyOutcome {
        guard var volume = volumes[name] else { return .refused(VolumeValidation.unknownVolume(name)) }
        if let problem = VolumeValidation.operationProblem(volume, disk: disk, action, in: self) { return .refused(problem) }
        volume.operations.append(DiskOperation(id: nextOperationID, volume: name, disk: disk, action: action))
        nextOperationID += 1
        volumes[name] = volume
        return .applied
    }

    private mutating func diskOperationFinished(_ id: Int, _ name: String, _ outcome: DiskOperationOutcome) -> ApplyOutcome {
        guard var volume = volumes[name], let index = volume.operations.firstIndex(where: { $0.id == id }) else {
            return .refused("disk operation \(id) is not pending on volume \(name)")
        }
        let op = volume.operations.remove(at: index)
        switch outcome {
        case let .failed(reason):
            volume.failures = Array((volume.failures + ["\(op.disk): \(op.action.verb) failed: \(reason)"]).suffix(Volume.failuresKept))
        case let .succeeded(probe):
            volume.freeMiB = probe.freeMiB
            volume.capacityMiB = probe.capacityMiB
            volume.failures.removeAll { $0.hasPrefix("\(op.disk): ") }
            switch op.action {
            case let .create(size, format):
                volume.disks.append(VolumeDisk(name: op.disk, format: format, sizeMiB: size))
                volume.disks.sort { $0.name < $1.name }
            case let .resize(size, _):
                if let i = volume.disks.firstIndex(where: { $0.name == op.disk }) { volume.disks[i].sizeMiB = size }
            case .delete:
                volume.disks.removeAll { $0.name == op.disk }
                leases[volume.imagePath(op.disk)] = nil
            }
        }
        volumes[name] = volume
        return .applied
    }

    private mutating func volumeProbed(_ name: String, _ node: NodeID, _ probe: VolumeProbe) -> ApplyOutcome {
        guard var volume = volumes[name] else { return .refused(VolumeValidation.unknownVolume(name)) }
        volume.unreachableFrom.removeAll { $0 == node }
        if !probe.reachable { volume.unreachableFrom = (volume.unreachableFrom + [node]).sorted() }
        if probe.reachable, volume.coordinator == node {
            volume.freeMiB = probe.freeMiB
            volume.capacityMiB = probe.capacityMiB
        }
        guard volume != volumes[name] else { return .refused("volume \(name) unchanged") }
        volumes[name] = volume
        return .applied
    }
}

extension DiskOperation.Action {
    /// One word for messages: create, resize or delete.
    public var verb: String {
        switch self {
        case .create: "create"
        case .resize: "resize"
        case .delete: "delete"
        }
    }
}
