/// The replicated cluster state: every member of a quorate partition holds the same value,
/// because every member applies the same commands in Corosync's agreed order.
public struct ClusterState: Sendable, Equatable {
    /// Grows by one each time a quorate membership completes a state sync; the highest wins a sync.
    public var epoch: UInt64 = 0
    /// Commands applied (heartbeats aside); orders two states of the same epoch, the longer
    /// history winning (a node restarted from a file that lags its last few commands loses).
    public var version: UInt64 = 0
    public var nodes: [NodeID: Node] = [:]
    public var vms: [String: VirtualMachine] = [:]
    public var jobs: [Int: MigrationJob] = [:]
    public var leases: [String: DiskLease] = [:]
    /// Storage volumes by name; empty in clusters that never added one.
    public var volumes: [String: Volume] = [:]
    public var settings: ClusterSettings
    public var nextJobID: Int = 1
    public var nextToken: UInt64 = 1
    /// The current or last patch run; nil until the first one.
    public var patchRun: PatchRun?
    public var nextOperationID: Int = 1

    /// Finished migration jobs kept for `corral migrations`; older ones are dropped.
    static let finishedJobsKept = 256

    public init(settings: ClusterSettings = .init()) {
        self.settings = settings
    }

    /// Nodes in id order: the only way the core walks nodes, so output never depends on hashing.
    public var sortedNodes: [Node] { nodes.values.sorted { $0.id < $1.id } }
    public var sortedVMs: [VirtualMachine] { vms.values.sorted { $0.name < $1.name } }
    public var sortedJobs: [MigrationJob] { jobs.values.sorted { $0.id < $1.id } }
    public var sortedVolumes: [Volume] { volumes.values.sorted { $0.name < $1.name } }

    public func node(named name: String) -> Node? { nodes.values.first { $0.name == name } }
    public func nodeName(_ id: NodeID?) -> String {
        guard let id else { return "-" }
        return nodes[id]?.name ?? "node\(id)"
    }

    /// The active (queued or running) migration of a VM, if any.
    public func activeJob(for vm: String) -> MigrationJob? {
        jobs.values.filter { $0.vm == vm && $0.isActive }.min { $0.id < $1.id }
    }

    /// A short, stable fingerprint of the whole state, compared between members during sync.
    public var digest: String { StateDigest.of(self) }
}

extension ClusterState: Codable {
    enum CodingKeys: String, CodingKey {
        case epoch, version, nodes, vms, jobs, leases, settings, nextJobID, nextToken, patchRun, volumes, nextOperationID
    }

    /// Collections are written as arrays sorted by key so that the bytes (and the digest)
    /// are identical on every node, whatever the process's hash seed.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(version, forKey: .version)
        try c.encode(sortedNodes, forKey: .nodes)
        try c.encode(sortedVMs, forKey: .vms)
        try c.encode(sortedJobs, forKey: .jobs)
        try c.encode(leases.values.sorted { $0.disk < $1.disk }, forKey: .leases)
        try c.encode(settings, forKey: .settings)
        try c.encode(nextJobID, forKey: .nextJobID)
        try c.encode(nextToken, forKey: .nextToken)
        // Written only once a run exists, so older states keep their bytes and digests.
        try c.encodeIfPresent(patchRun, forKey: .patchRun)
        // Written only once volumes exist: a cluster without any keeps the bytes (and the
        // digest) of the versions before volumes, and older agents still read its state.
        if !volumes.isEmpty || nextOperationID != 1 {
            try c.encode(sortedVolumes, forKey: .volumes)
            try c.encode(nextOperationID, forKey: .nextOperationID)
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(UInt64.self, forKey: .epoch)
        version = try c.decode(UInt64.self, forKey: .version)
        settings = try c.decode(ClusterSettings.self, forKey: .settings)
        nextJobID = try c.decode(Int.self, forKey: .nextJobID)
        nextToken = try c.decode(UInt64.self, forKey: .nextToken)
        patchRun = try c.decodeIfPresent(PatchRun.self, forKey: .patchRun)
        nodes = try Self.keyed(c.decode([Node].self, forKey: .nodes), by: \.id, what: "node")
        vms = try Self.keyed(c.decode([VirtualMachine].self, forKey: .vms), by: \.name, what: "VM")
        jobs = try Self.keyed(c.decode([MigrationJob].self, forKey: .jobs), by: \.id, what: "migration job")
        leases = try Self.keyed(c.decode([DiskLease].self, forKey: .leases), by: \.disk, what: "lease")
        volumes = try Self.keyed(c.decodeIfPresent([Volume].self, forKey: .volumes) ?? [], by: \.name, what: "volume")
        nextOperationID = try c.decodeIfPresent(Int.self, forKey: .nextOperationID) ?? 1
    }

    private static func keyed<K: Hashable, V>(_ items: [V], by key: (V) -> K, what: String) throws -> [K: V] {
        var result: [K: V] = [:]
        for item in items {
            guard result.updateValue(item, forKey: key(item)) == nil else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "duplicate \(what) \(key(item))"))
            }
        }
        return result
    }
}
