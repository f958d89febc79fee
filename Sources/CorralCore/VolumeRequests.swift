/// Turns the operator's storage requests (names) into commands, or a specific refusal.
public enum VolumeRequests {
    static func command(for request: OperatorRequest, in state: ClusterState) -> Result<Command, RequestRefusal> {
        switch request {
        case let .addVolume(name, path, kind, nodeName):
            var owner: NodeID?
            switch (kind, nodeName) {
            case (.shared, nil): owner = nil
            case (.shared, _?): return .failure("a shared volume is seen by every node; --node is for a local volume")
            case (.local, nil): return .failure("a local volume needs the node whose directory it is (--node NAME)")
            case let (.local, name?):
                guard let node = state.node(named: name) else { return .failure(.init("no node named \(name)")) }
                owner = node.id
            }
            let volume = Volume(name: name, path: path, kind: kind, owner: owner)
            if let problem = VolumeValidation.additionProblem(volume, in: state) { return .failure(.init(problem)) }
            return .success(.addVolume(volume))
        case let .removeVolume(name):
            guard let volume = state.volumes[name] else { return .failure(.init(VolumeValidation.unknownVolume(name))) }
            if let problem = VolumeValidation.removalProblem(volume, in: state) { return .failure(.init(problem)) }
            return .success(.removeVolume(name))
        case let .setVolumeState(name, newState, force):
            guard state.volumes[name] != nil else { return .failure(.init(VolumeValidation.unknownVolume(name))) }
            return .success(.setVolumeState(name, newState, force: force))
        case let .moveVolume(name, to):
            guard state.volumes[name] != nil else { return .failure(.init(VolumeValidation.unknownVolume(name))) }
            guard let node = state.node(named: to) else { return .failure(.init("no node named \(to)")) }
            return .success(.moveVolumeCoordinator(name, to: node.id))
        case let .createDisk(name, disk, size, format): return operation(name, disk, .create(sizeMiB: size, format: format), state)
        case let .resizeDisk(name, disk, size):
            let format = state.volumes[name]?.disk(named: disk)?.format ?? .raw
            return operation(name, disk, .resize(sizeMiB: size, format: format), state)
        case let .deleteDisk(name, disk): return operation(name, disk, .delete, state)
        default: return .failure("not a storage request")
        }
    }

    private static func operation(_ name: String, _ disk: String, _ action: DiskOperation.Action,
                                  _ state: ClusterState) -> Result<Command, RequestRefusal> {
        guard let volume = state.volumes[name] else { return .failure(.init(VolumeValidation.unknownVolume(name))) }
        if let problem = VolumeValidation.operationProblem(volume, disk: disk, action, in: state) { return .failure(.init(problem)) }
        return .success(.queueDiskOperation(volume: name, disk: disk, action))
    }

    /// A VM's disks may name volume disks as `VOLUME/DISK`; they become the images' paths, and
    /// the formats the volumes recorded for them go with the VM (QEMU never guesses a format).
    static func resolvingDisks(_ spec: VMSpec, in state: ClusterState) -> Result<VMSpec, RequestRefusal> {
        var resolved = spec
        var formats: [DiskFormat] = []
        for (i, disk) in spec.disks.enumerated() {
            guard !disk.hasPrefix("/") else {
                let name = String(disk.split(separator: "/").last ?? "")
                formats.append(state.volume(holding: disk)?.disk(named: name)?.format ?? .raw)
                continue
            }
            let parts = disk.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, let volume = state.volumes[parts[0]] else {
                return .failure(.init("disk \(disk) must be an absolute path or VOLUME/DISK of a known volume"))
            }
            guard let image = volume.disk(named: parts[1]) else { return .failure(.init("no disk \(disk) (corral disk list \(volume.name))")) }
            resolved.disks[i] = volume.imagePath(parts[1])
            formats.append(image.format)
        }
        resolved.diskFormats = formats.allSatisfy { $0 == .raw } ? nil : formats
        return .success(resolved)
    }

    /// "create disk VOL/DISK (1024 MiB, raw)", for replies and `disk list`.
    public static func describeQueued(_ volume: String, _ disk: String, _ action: DiskOperation.Action) -> String {
        switch action {
        case let .create(size, format): "create disk \(volume)/\(disk) (\(size) MiB, \(format.rawValue))"
        case let .resize(size, _): "resize disk \(volume)/\(disk) to \(size) MiB"
        case .delete: "delete disk \(volume)/\(disk)"
        }
    }

    static func describe(_ command: Command, _ state: ClusterState) -> String {
        switch command {
        case let .addVolume(v):
            "add \(v.kind.rawValue) volume \(v.name) at \(v.path)" + (v.owner.map { " on \(state.nodeName($0))" } ?? "")
        case let .removeVolume(name): "remove volume \(name)"
        case let .setVolumeState(name, newState, force): "set volume \(name) \(newState.rawValue)\(force ? " (forced)" : "")"
        case let .moveVolumeCoordinator(name, to): "move the coordinator of volume \(name) to \(state.nodeName(to))"
        case let .assignVolumeCoordinator(name, to): "\(state.nodeName(to)) coordinates volume \(name)"
        case let .queueDiskOperation(name, disk, action): "queue: " + describeQueued(name, disk, action)
        case let .diskOperationFinished(id, name, outcome):
            switch outcome {
            case .succeeded: "disk operation \(id) on volume \(name) done"
            case let .failed(why): "disk operation \(id) on volume \(name) failed: \(why)"
            }
        case let .volumeProbed(name, node, probe):
            "\(state.nodeName(node)) \(probe.reachable ? "sees" : "cannot reach") volume \(name)"
        default: "\(command)"
        }
    }
}
