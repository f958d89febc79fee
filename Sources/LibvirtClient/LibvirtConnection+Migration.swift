import CLibvirt

/// Live migration of a guest and control of the running migration job.
extension LibvirtConnection {
    /// Migrates the guest called `name` (`virDomainMigrateToURI3`) and returns once it runs on
    /// the destination; blocks for the whole migration. With `.peerToPeer`, `destinationURI` is
    /// the destination daemon's URI (e.g. `qemu+tcp://10.99.0.2/system`) as seen from the source
    /// daemon; without it, nil, and `parameters.migrationURI` says where QEMU connects.
    /// Throws when it fails or is aborted; the guest then still runs here.
    public func migrate(_ name: String, to destinationURI: String?, parameters: MigrationParameters = MigrationParameters(),
                        flags: MigrationFlags) throws(LibvirtError) {
        let list = TypedParameterList()
        if let bandwidth = parameters.bandwidthMiBps { try list.add(VIR_MIGRATE_PARAM_BANDWIDTH, UInt64(max(bandwidth, 0))) }
        if let name = parameters.destinationName { try list.add(VIR_MIGRATE_PARAM_DEST_NAME, name) }
        if let uri = parameters.migrationURI { try list.add(VIR_MIGRATE_PARAM_URI, uri) }
        if let address = parameters.listenAddress { try list.add(VIR_MIGRATE_PARAM_LISTEN_ADDRESS, address) }
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainMigrateToURI3(domain, destinationURI, list.parameters, UInt32(list.count), flags.rawValue) == 0 else {
                throw .last("virDomainMigrateToURI3 \(name)")
            }
        }
    }

    /// Changes the bandwidth cap of the guest's running migration, MiB/s, and of its later ones
    /// (`virDomainMigrateSetMaxSpeed`); `MigrationParameters.uncappedMiBps` lifts it.
    public func setMaxMigrationSpeed(_ name: String, MiBps: Int) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainMigrateSetMaxSpeed(domain, UInt(max(MiBps, 0)), 0) == 0 else {
                throw .last("virDomainMigrateSetMaxSpeed \(name)")
            }
        }
    }

    /// Aborts the guest's running job (`virDomainAbortJob`); a migration then fails and the
    /// guest keeps running on the source.
    public func abortJob(_ name: String) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainAbortJob(domain) == 0 else { throw .last("virDomainAbortJob \(name)") }
        }
    }

    /// Statistics of the guest's running job, or with `completed` of the last one that finished
    /// (`virDomainGetJobStats`). `keepCompleted` leaves the completed statistics for a later
    /// reader instead of consuming them.
    public func jobStats(_ name: String, completed: Bool = false, keepCompleted: Bool = false) throws(LibvirtError) -> JobStats {
        var flags: UInt32 = 0
        if completed { flags |= VIR_DOMAIN_JOB_STATS_COMPLETED.rawValue }
        if keepCompleted { flags |= VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED.rawValue }
        return try withDomain(name) { domain throws(LibvirtError) in
            var type: Int32 = 0
            var parameters: UnsafeMutablePointer<virTypedParameter>?
            var count: Int32 = 0
            guard virDomainGetJobStats(domain, &type, &parameters, &count, flags) == 0 else {
                throw .last("virDomainGetJobStats \(name)")
            }
            defer { virTypedParamsFree(parameters, count) }
            return JobStats(type: JobStats.JobType(type), parameters: parameters, count: count)
        }
    }
}
