public enum LeaseMode: String, Codable, Sendable, Equatable {
    /// One holder: a VM's own disk.
    case exclusive
    /// Any number of holders: a disk shared by a guest cluster.
    case shared
}

/// Who may write a disk. The token grows with every grant, so a holder that was fenced and
/// comes back with an old token is refused.
public struct DiskLease: Codable, Sendable, Equatable {
    public var disk: String
    public var holders: [NodeID]
    public var token: UInt64
    public var mode: LeaseMode
    public init(disk: String, holders: [NodeID], token: UInt64, mode: LeaseMode) {
        self.disk = disk
        self.holders = holders
        self.token = token
        self.mode = mode
    }
}
