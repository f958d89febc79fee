/// Cluster-wide limits for live migrations, set by the operator and replicated.
public struct MigrationSettings: Codable, Sendable, Equatable {
    /// Most concurrent migrations touching one node (as source or destination); 0 = no limit.
    public var maxPerNode: Int
    /// Most concurrent migrations in the cluster; 0 = no limit.
    public var maxCluster: Int
    /// Measure-and-tune (DESIGN §4). Off: run up to `maxPerNode` at once, uncapped.
    public var autoTune: Bool
    /// Bandwidth (MiB/s) of every link kept free for Corosync and other cluster traffic.
    public var reserveMiBps: Int
    /// Measured rate (MiB/s) one migration stream reaches on an idle link; 0 = unknown (use the link).
    public var streamMiBps: Int
    /// Time (ms) a migration spends before it sends memory (connect, start the destination QEMU).
    /// The tuned scheduler overlaps it with the tail of the previous migration.
    public var setupMs: Int
    /// Times a failed migration is retried before its drain reports it.
    public var maxAttempts: Int

    public init(maxPerNode: Int = 0, maxCluster: Int = 0, autoTune: Bool = true, reserveMiBps: Int = 0,
                streamMiBps: Int = 0, setupMs: Int = 500, maxAttempts: Int = 2) {
        self.maxPerNode = maxPerNode
        self.maxCluster = maxCluster
        self.autoTune = autoTune
        self.reserveMiBps = reserveMiBps
        self.streamMiBps = streamMiBps
        self.setupMs = setupMs
        self.maxAttempts = maxAttempts
    }
}

/// How long a node that left the membership is presumed alive, and how VMs are restarted.
public struct RecoverySettings: Codable, Sendable, Equatable {
    /// A node renews its self-fence lease for this long each time its own heartbeat comes back
    /// through a quorate membership; past it, it must have stopped its VMs (or its watchdog fired).
    /// Must exceed Corosync's failure detection (no delivery at all while a new membership
    /// forms: about 3.4 s with `token: 1000`) plus a heartbeat, or healthy nodes self-fence.
    public var leaseMs: Int
    /// Extra wait on the quorate side after `leaseMs`, counted from the lost node's last heartbeat
    /// seen here, for clock-rate drift and a heartbeat the lost node delivered but we did not.
    public var marginMs: Int
    /// Heartbeat period: how often a quorate node proves its Corosync path by a round trip.
    public var heartbeatMs: Int
    /// Whether a fence agent is configured; if so the coordinator asks it first.
    public var fenceAgent: Bool
    /// Crashes restarted on the same node before the VM fails over.
    public var restartsInPlace: Int
    /// Crashes after which a VM is left failed (no restart storm).
    public var maxCrashes: Int
    /// A VM that has run this long since its last crash has its crash count forgiven, so the
    /// limits above count crashes per window (default one hour).
    public var crashWindowMs: Int
    /// How long a node that left the membership may come back before a fence agent is run
    /// against it: link blips shorter than this cost no failover. 0 fences at once.
    public var fenceGraceMs: Int

    public init(leaseMs: Int = 5000, marginMs: Int = 500, heartbeatMs: Int = 250, fenceAgent: Bool = false,
                restartsInPlace: Int = 2, maxCrashes: Int = 5, crashWindowMs: Int = 3_600_000, fenceGraceMs: Int = 0) {
        self.leaseMs = leaseMs
        self.marginMs = marginMs
        self.heartbeatMs = heartbeatMs
        self.fenceAgent = fenceAgent
        self.restartsInPlace = restartsInPlace
        self.maxCrashes = maxCrashes
        self.crashWindowMs = crashWindowMs
        self.fenceGraceMs = fenceGraceMs
    }
}

/// Capacity rules of placement.
public struct PlacementSettings: Codable, Sendable, Equatable {
    /// vCPUs placed per physical vCPU; memory is never over-committed.
    public var vcpuOvercommit: Int
    public init(vcpuOvercommit: Int = 4) { self.vcpuOvercommit = vcpuOvercommit }
}

public struct ClusterSettings: Codable, Sendable, Equatable {
    public var migration: MigrationSettings
    public var recovery: RecoverySettings
    public var placement: PlacementSettings
    /// Votes needed is a majority of this many nodes (votequorum's expected votes).
    public var expectedVotes: Int
    public init(migration: MigrationSettings = .init(), recovery: RecoverySettings = .init(),
                placement: PlacementSettings = .init(), expectedVotes: Int = 3) {
        self.migration = migration
        self.recovery = recovery
        self.placement = placement
        self.expectedVotes = expectedVotes
    }
}
