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
            VMRow(name: v.name, node: state.nodeName(v.node), state: v.state.rawValue, memoryMiB: v.spec.memoryMiB,
                  priority: v.spec.priority.rawValue, highlyAvailable: v.spec.highlyAvailable, reason: v.reason)
        }
        patchRun = state.patchRun
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
