import CorralCore

/// One request line from the `corral` CLI to the agent's control socket.
public enum ControlRequest: Codable, Sendable, Equatable {
    case status
    case operate(OperatorRequest, whatIf: Bool)
    /// History lines after `after` (all kept ones for nil), at most `limit` of the newest.
    case events(after: UInt64?, limit: Int)
}

/// One response line back to the CLI.
public enum ControlResponse: Codable, Sendable, Equatable {
    case status(StatusReport)
    case reply(RequestReply)
    case events([JournalEntry])
    case error(String)
}

/// What `corral status` shows: this node's view of the cluster.
public struct StatusReport: Codable, Sendable, Equatable {
    public struct NodeRow: Codable, Sendable, Equatable {
        public var id: UInt32
        public var name: String
        public var state: String
        public var memoryMiB: Int
        public var usedMemoryMiB: Int
        public var vms: Int
        public var member: Bool
        public var drainFailures: [String]
    }
    public struct VMRow: Codable, Sendable, Equatable {
        public var name: String
        public var node: String
        public var state: String
        public var memoryMiB: Int
        public var priority: String
        public var highlyAvailable: Bool
        public var reason: String
        /// The node-local volumes its disks are on: it cannot fail over, whatever its HA setting
        /// (`highlyAvailable` is false then); nil when there are none.
        public var localVolumes: [String]? = nil
    }
    public struct DiskRow: Codable, Sendable, Equatable {
        public var volume: String
        public var name: String
        public var path: String
        public var format: String
        public var sizeMiB: Int
        /// The VM whose disk it is, if any.
        public var vm: String?
        public var leaseHolders: [String]
        public var leaseToken: UInt64?
    }
    public struct OperationRow: Codable, Sendable, Equatable {
        public var id: Int
        public var disk: String
        /// create, resize or delete.
        public var action: String
        public var description: String
    }
    public struct VolumeRow: Codable, Sendable, Equatable {
        public var name: String
        public var path: String
        public var kind: String
        public var owner: String?
        public var state: String
        public var coordinator: String?
        public var handoffTo: String?
        /// Nodes that can use its images now.
        public var seenBy: [String]
        public var unreachableFrom: [String]
        public var freeMiB: Int
        public var capacityMiB: Int
        public var disks: [DiskRow]
        /// Pending disk operations, oldest first.
        public var operations: [OperationRow]
        public var failures: [String]
        /// VMs using it that run now (what maintenance would stop).
        public var runningVMs: [String]
    }
    public struct MigrationRow: Codable, Sendable, Equatable {
        public var id: Int
        public var vm: String
        public var from: String
        public var to: String
        public var purpose: String
        public var state: String
        public var bandwidthMiBps: Int
        public var percent: Int?
        public var remainingMiB: Int?
        public var rateMiBps: Int?
        public var dirtyRateMiBps: Int?
        /// Seconds left at the current rate; nil until the source reports progress.
        public var etaSeconds: Int?
        public var downtimeMs: Int
        public var failure: String
        /// The guest's memory to send in all, from the source's last progress report.
        public var totalMiB: Int? = nil
    }
    public var node: String
    public var nodeID: UInt32
    public var quorate: Bool
    public var syncing: Bool
    public var members: [String]
    public var coordinator: String?
    public var epoch: UInt64
    public var version: UInt64
    public var digest: String
    public var nodes: [NodeRow]
    public var vms: [VMRow]
    public var migrations: [MigrationRow]
    /// Absent from agents that predate volumes.
    public var volumes: [VolumeRow]? = nil
    /// This node's self-fence lease left, in ms, when the report was made; nil if not known.
    /// Set by the agent after building the report (`init(_:)` has no clock).
    public var leaseRemainingMs: Int? = nil
    /// History lines recorded since the agent started, by `EventJournal.countedKinds`; nil if
    /// not known. Set by the agent, like `leaseRemainingMs`.
    public var eventCounts: [String: Int]? = nil
    /// The current or last patch run, as the replicated state holds it.
    public var patchRun: PatchRun? = nil

    public init(_ core: CorralNode) {
        let state = core.state
        let load = NodeLoad(state)
        node = core.spec.name
        nodeID = core.id
        quorate = core.quorate
        syncing = core.syncing
        members = core.members.map { state.nodeName($0) }
        coordinator = core.quorate ? core.members.first.map { state.nodeName($0) } : nil
        epoch = state.epoch
        version = state.version
        digest = state.digest
        nodes = state.sortedNodes.map { n in
            NodeRow(id: n.id, name: n.name, state: n.state.rawValue, memoryMiB: n.capacity.memoryMiB,
                    usedMemoryMiB: load.usage[n.id]?.memoryMiB ?? 0, vms: load.usage[n.id]?.vmCount ?? 0,
                    member: core.members.contains(n.id), drainFailures: n.drainFailures)
        }
        vms = state.sortedVMs.map { v in
            let local = state.volumes(of: v.spec).filter { $0.kind == .local }.map(\.name)
            return VMRow(name: v.name, node: state.nodeName(v.node), state: v.state.rawValue, memoryMiB: v.spec.memoryMiB,
                         priority: v.spec.priority.rawValue, highlyAvailable: v.spec.highlyAvailable && local.isEmpty, reason: v.reason,
                         localVolumes: local.isEmpty ? nil : local)
        }
        patchRun = state.patchRun
        volumes = state.sortedVolumes.map { Self.row($0, state) }
        migrations = state.sortedJobs.suffix(50).map { j in
            MigrationRow(id: j.id, vm: j.vm, from: state.nodeName(j.source), to: state.nodeName(j.destination),
                         purpose: j.purpose.rawValue, state: j.state.rawValue, bandwidthMiBps: j.bandwidthMiBps,
                         percent: j.progress.map { 100 - 100 * $0.remainingMiB / max(1, $0.totalMiB) },
                         remainingMiB: j.progress?.remainingMiB, rateMiBps: j.progress?.rateMiBps,
                         dirtyRateMiBps: j.progress?.dirtyRateMiBps,
                         etaSeconds: j.progress.flatMap { p in p.rateMiBps > 0 ? (p.remainingMiB + p.rateMiBps - 1) / p.rateMiBps : nil },
                         downtimeMs: j.downtimeMs, failure: j.failure, totalMiB: j.progress?.totalMiB)
        }
    }
}

extension StatusReport {
    static func row(_ v: Volume, _ state: ClusterState) -> VolumeRow {
        let disks = v.disks.map { d in
            let path = v.imagePath(d.name)
            let lease = state.leases[path]
            return DiskRow(volume: v.name, name: d.name, path: path, format: d.format.rawValue, sizeMiB: d.sizeMiB,
                           vm: state.sortedVMs.first { $0.spec.disks.contains(path) }?.name,
                           leaseHolders: lease?.holders.map { state.nodeName($0) } ?? [], leaseToken: lease?.token)
        }
        return VolumeRow(name: v.name, path: v.path, kind: v.kind.rawValue, owner: v.owner.map { state.nodeName($0) },
                         state: v.state.rawValue, coordinator: v.coordinator.map { state.nodeName($0) },
                         handoffTo: v.handoffTo.map { state.nodeName($0) },
                         seenBy: state.sortedNodes.filter { v.isVisible(from: $0.id) }.map(\.name),
                         unreachableFrom: v.unreachableFrom.map { state.nodeName($0) }, freeMiB: v.freeMiB, capacityMiB: v.capacityMiB,
                         disks: disks,
                         operations: v.operations.map {
                            OperationRow(id: $0.id, disk: $0.disk, action: $0.action.verb,
                                         description: VolumeRequests.describeQueued($0.volume, $0.disk, $0.action))
                         },
                         failures: v.failures, runningVMs: state.activeVMs(on: v).map(\.name))
    }
}
