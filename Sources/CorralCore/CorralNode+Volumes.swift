/// What this node does for the volumes: it looks at every volume it should see (on its first
/// sight of the volume, then every `probeEveryMs`), and, as a volume's coordinator, runs its
/// disk operations one at a time and hands the role over when asked.
public struct StorageWork: Sendable {
    /// Operations handed to the shell and not yet answered, by id.
    var issued: Set<Int> = []
    /// Answers not yet recorded in the replicated state (re-reported after a membership change).
    var finished: [Int: (operation: DiskOperation, outcome: DiskOperationOutcome)] = [:]
    var probing: Set<String> = []
    var probed: Set<String> = []
    /// Volumes this node coordinated at its last pass: a role just taken gets a look at once,
    /// so that free space is known before the first disk request.
    var coordinated: Set<String> = []
    var lastProbeRound: Millis?
}

extension CorralNode {
    /// How often a node checks that it still reaches its volumes.
    public static let probeEveryMs: Millis = 5_000
    /// Free space moves with every guest write: only a change this large is worth a command.
    static let freeSpaceReportMiB = 64

    mutating func onStorage(_ event: StorageEvent, _ out: inout [Directive]) {
        switch event {
        case let .operationFinished(operation, outcome):
            storageWork.issued.remove(operation.id)
            storageWork.finished[operation.id] = (operation, outcome)
            out.append(.log("disk operation \(operation.id) (\(operation.action.verb) \(operation.volume)/\(operation.disk)): "
                            + { if case let .failed(why) = outcome { return "failed: \(why)" } else { return "done" } }()))
        case let .probed(name, probe):
            storageWork.probing.remove(name)
            guard canAct, let volume = state.volumes[name] else { return }
            let seenAsReachable = !volume.unreachableFrom.contains(id)
            let coordinating = volume.coordinator == id && probe.reachable
            let spaceMoved = abs(probe.freeMiB - volume.freeMiB) >= Self.freeSpaceReportMiB || probe.capacityMiB != volume.capacityMiB
            if seenAsReachable != probe.reachable || (coordinating && spaceMoved) {
                if seenAsReachable != probe.reachable {
                    out.append(.log("volume \(name) is \(probe.reachable ? "reachable again" : "unreachable") from here"))
                }
                send(.command(.volumeProbed(name, node: id, probe)), &out)
            }
        }
    }

    mutating func runStorageWork(_ out: inout [Directive]) {
        let volumes = state.sortedVolumes
        for (opID, result) in storageWork.finished.sorted(by: { $0.key < $1.key }) {
            if state.volumes[result.operation.volume]?.operations.contains(where: { $0.id == opID }) ?? false {
                report(.diskOperationFinished(id: opID, volume: result.operation.volume, result.outcome), &out)
            } else {
                storageWork.finished[opID] = nil
            }
        }
        let pending = Set(volumes.flatMap { $0.operations.map(\.id) })
        storageWork.issued.formIntersection(pending)
        for volume in volumes where volume.coordinator == id {
            let busy = volume.operations.contains { storageWork.issued.contains($0.id) || storageWork.finished[$0.id] != nil }
            if let target = volume.handoffTo {
                if !busy { report(.assignVolumeCoordinator(volume.name, to: target), &out) }
                continue
            }
            guard !busy, volume.state == .online, volume.isVisible(from: id), let next = volume.operations.first else { continue }
            storageWork.issued.insert(next.id)
            out.append(.runDiskOperation(next, volumePath: volume.path))
        }
        let mine = Set(volumes.filter { $0.coordinator == id }.map(\.name))
        storageWork.probed.subtract(mine.subtracting(storageWork.coordinated))
        storageWork.coordinated = mine
        probeVolumes(volumes, &out)
    }

    /// Every volume this node should see is looked at once when it appears, then every
    /// `probeEveryMs`; one look at a time per volume.
    private mutating func probeVolumes(_ volumes: [Volume], _ out: inout [Directive]) {
        let round = storageWork.lastProbeRound.map { now - $0 >= Self.probeEveryMs } ?? true
        if round { storageWork.lastProbeRound = now }
        for volume in volumes where volume.kind == .shared || volume.owner == id {
            guard round || !storageWork.probed.contains(volume.name), !storageWork.probing.contains(volume.name) else { continue }
            storageWork.probed.insert(volume.name)
            storageWork.probing.insert(volume.name)
            out.append(.probeVolume(volume.name, path: volume.path))
        }
    }
}
