import CLibvirt

/// How a live migration behaves (`virDomainMigrateFlags`).
public struct MigrationFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Keep the guest running while memory is copied (pre-copy).
    public static let live = MigrationFlags(rawValue: VIR_MIGRATE_LIVE.rawValue)
    /// The source daemon drives the migration and connects to the destination daemon itself.
    public static let peerToPeer = MigrationFlags(rawValue: VIR_MIGRATE_PEER2PEER.rawValue)
    /// Define the guest persistently on the destination.
    public static let persistDestination = MigrationFlags(rawValue: VIR_MIGRATE_PERSIST_DEST.rawValue)
    /// Remove the source's persistent definition once the guest left.
    public static let undefineSource = MigrationFlags(rawValue: VIR_MIGRATE_UNDEFINE_SOURCE.rawValue)
    /// Copy every disk to the destination as well (non-shared storage).
    public static let copyStorageAll = MigrationFlags(rawValue: VIR_MIGRATE_NON_SHARED_DISK.rawValue)
    /// Throttle the guest's vCPUs when it dirties memory faster than the link copies it.
    public static let autoConverge = MigrationFlags(rawValue: VIR_MIGRATE_AUTO_CONVERGE.rawValue)
    /// Allow switching to post-copy (`virDomainMigrateStartPostCopy`).
    public static let postCopy = MigrationFlags(rawValue: VIR_MIGRATE_POSTCOPY.rawValue)
    /// Skip libvirt's safety checks, e.g. disks on storage it does not recognise as shared
    /// (a local directory seen by both hosts).
    public static let unsafe = MigrationFlags(rawValue: VIR_MIGRATE_UNSAFE.rawValue)
}

/// Typed parameters of `virDomainMigrateToURI3`; nil leaves libvirt's default.
public struct MigrationParameters: Sendable, Equatable {
    /// Cap on the migration stream, MiB/s (`VIR_MIGRATE_PARAM_BANDWIDTH`). nil and 0 keep the
    /// guest's current cap: the last `setMaxMigrationSpeed` (even one made during an earlier
    /// migration), else none. `uncappedMiBps` lifts it.
    public var bandwidthMiBps: Int?
    /// The guest's name on the destination (`VIR_MIGRATE_PARAM_DEST_NAME`).
    public var destinationName: String?
    /// Where QEMU sends the migration stream, e.g. `tcp://10.99.0.2` (`VIR_MIGRATE_PARAM_URI`),
    /// when it must differ from what the destination daemon proposes.
    public var migrationURI: String?
    /// The address the destination QEMU listens on (`VIR_MIGRATE_PARAM_LISTEN_ADDRESS`).
    public var listenAddress: String?

    /// libvirt's largest cap (QEMU_DOMAIN_MIG_BANDWIDTH_MAX), which it uses itself for "none".
    public static let uncappedMiBps = Int(Int64.max / (1 << 20))

    public init(bandwidthMiBps: Int? = nil, destinationName: String? = nil, migrationURI: String? = nil, listenAddress: String? = nil) {
        self.bandwidthMiBps = bandwidthMiBps
        self.destinationName = destinationName
        self.migrationURI = migrationURI
        self.listenAddress = listenAddress
    }
}
