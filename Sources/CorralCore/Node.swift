/// Whether the cluster can reach a node, and whether its VMs are known to be off.
public enum NodeHealth: String, Codable, Sendable, Equatable {
    /// In the quorate membership.
    case up
    /// Left the membership while holding VMs or leases: nothing may restart them until fenced.
    case fencing
    /// Known to run nothing: its self-fence lease expired or a fence agent confirmed it off.
    case fenced
    /// Out of the membership and holding nothing, so there is nothing to fence.
    case down
}

/// What the operator asked of a node. Kept separate from health so a drained node that
/// crashes and returns is still drained.
public enum NodeAdmin: String, Codable, Sendable, Equatable {
    case active, paused, draining, drained
}

/// The state shown to operators: health first, then the administrative state.
public enum NodeState: String, Codable, Sendable, Equatable {
    case up, paused, draining, drained, down, fencing, fenced
}

/// A registered cluster member and what it offers.
public struct Node: Codable, Sendable, Equatable {
    public var id: NodeID
    public var name: String
    public var capacity: Capacity
    public var health: NodeHealth
    public var admin: NodeAdmin
    /// Link bandwidth (MiB/s) of this node's migration network; 0 until configured or measured.
    public var linkMiBps: Int
    /// The link came from the node's own configuration (`corrald --link-mbps`): migration
    /// rates never raise it (they overshoot a shaped link: see migrations.md).
    public var linkConfigured: Bool
    /// Why the last drain of this node stopped, one line per VM; empty when it did not fail.
    public var drainFailures: [String]
    /// Jobs numbered from here on belong to the current drain (counts its failed attempts).
    public var drainFirstJob: Int
    /// The longest self-fence lease this node was ever granted by a heartbeat this state has
    /// applied (its floor from Corosync's timing and the setting at the time): what a
    /// coordinator that did not see its last heartbeats must wait out. Only grows.
    public var longestLeaseMs: Int
    /// The epoch whose state sync marked this node `fencing`: names the fencing episode, so a
    /// fence agent's answer about an earlier failure never fences a later one (a node may have
    /// come back and failed again in partitions this node was not in).
    public var fencingEpoch: UInt64

    public init(id: NodeID, name: String, capacity: Capacity, linkMiBps: Int = 0) {
        self.id = id
        self.name = name
        self.capacity = capacity
        self.health = .up
        self.admin = .active
        self.linkMiBps = linkMiBps
        self.linkConfigured = false
        self.drainFailures = []
        self.drainFirstJob = 0
        self.longestLeaseMs = 0
        self.fencingEpoch = 0
    }

    public var state: NodeState {
        switch health {
        case .fencing: return .fencing
        case .fenced: return .fenced
        case .down: return .down
        case .up:
            switch admin {
            case .active: return .up
            case .paused: return .paused
            case .draining: return .draining
            case .drained: return .drained
            }
        }
    }

    /// New VMs (placement, failover, migration targets) may go here.
    public var acceptsVMs: Bool { health == .up && admin == .active }
}

extension Node {
    enum CodingKeys: String, CodingKey {
        case id, name, capacity, health, admin, linkMiBps, linkConfigured, drainFailures, drainFirstJob, longestLeaseMs, fencingEpoch
    }

    /// `linkConfigured` is written only when true, so states without it keep their bytes
    /// and digests, and state files from before it still load.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(capacity, forKey: .capacity)
        try c.encode(health, forKey: .health)
        try c.encode(admin, forKey: .admin)
        try c.encode(linkMiBps, forKey: .linkMiBps)
        if linkConfigured { try c.encode(true, forKey: .linkConfigured) }
        try c.encode(drainFailures, forKey: .drainFailures)
        try c.encode(drainFirstJob, forKey: .drainFirstJob)
        if longestLeaseMs > 0 { try c.encode(longestLeaseMs, forKey: .longestLeaseMs) }
        if fencingEpoch > 0 { try c.encode(fencingEpoch, forKey: .fencingEpoch) }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(NodeID.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        capacity = try c.decode(Capacity.self, forKey: .capacity)
        health = try c.decode(NodeHealth.self, forKey: .health)
        admin = try c.decode(NodeAdmin.self, forKey: .admin)
        linkMiBps = try c.decode(Int.self, forKey: .linkMiBps)
        linkConfigured = try c.decodeIfPresent(Bool.self, forKey: .linkConfigured) ?? false
        drainFailures = try c.decode([String].self, forKey: .drainFailures)
        drainFirstJob = try c.decode(Int.self, forKey: .drainFirstJob)
        longestLeaseMs = try c.decodeIfPresent(Int.self, forKey: .longestLeaseMs) ?? 0
        fencingEpoch = try c.decodeIfPresent(UInt64.self, forKey: .fencingEpoch) ?? 0
    }
}

/// What a node announces about itself when it joins.
public struct NodeSpec: Codable, Sendable, Equatable {
    public var id: NodeID
    public var name: String
    public var capacity: Capacity
    public var linkMiBps: Int
    public init(id: NodeID, name: String, capacity: Capacity, linkMiBps: Int = 0) {
        self.id = id
        self.name = name
        self.capacity = capacity
        self.linkMiBps = linkMiBps
    }
}
