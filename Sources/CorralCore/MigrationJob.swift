/// Why a migration exists; drains and failbacks are tracked per node.
public enum MigrationPurpose: String, Codable, Sendable, Equatable {
    case drain, move, failback
    /// Its node lost its path to one of the VM's volumes.
    case storage
}

public enum MigrationJobState: String, Codable, Sendable, Equatable {
    case queued, running, succeeded, failed
}

/// The latest progress a source node reported for a running migration.
public struct MigrationProgress: Codable, Sendable, Equatable {
    public var totalMiB: Int
    public var remainingMiB: Int
    public var rateMiBps: Int
    public var dirtyRateMiBps: Int
    public init(totalMiB: Int, remainingMiB: Int, rateMiBps: Int, dirtyRateMiBps: Int) {
        self.totalMiB = totalMiB
        self.remainingMiB = remainingMiB
        self.rateMiBps = rateMiBps
        self.dirtyRateMiBps = dirtyRateMiBps
    }
}

/// One live migration, from queue to outcome.
public struct MigrationJob: Codable, Sendable, Equatable {
    public var id: Int
    public var vm: String
    public var source: NodeID
    public var destination: NodeID
    public var purpose: MigrationPurpose
    public var state: MigrationJobState
    /// The bandwidth cap given to libvirt (MiB/s); 0 means uncapped.
    public var bandwidthMiBps: Int
    public var progress: MigrationProgress?
    public var failure: String
    public var downtimeMs: Int

    public init(id: Int, vm: String, source: NodeID, destination: NodeID, purpose: MigrationPurpose) {
        self.id = id
        self.vm = vm
        self.source = source
        self.destination = destination
        self.purpose = purpose
        self.state = .queued
        self.bandwidthMiBps = 0
        self.progress = nil
        self.failure = ""
        self.downtimeMs = 0
    }

    public var isActive: Bool { state == .queued || state == .running }
}
