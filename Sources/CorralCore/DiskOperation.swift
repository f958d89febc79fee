/// A change to one image on a volume, queued in the replicated state and run by the volume's
/// coordinator. Every action names its end state (this size, gone), so running one again after
/// a coordinator change cannot do it twice: the shell checks what is already on the volume.
public struct DiskOperation: Codable, Sendable, Equatable {
    public enum Action: Codable, Sendable, Equatable {
        case create(sizeMiB: Int, format: DiskFormat)
        /// To this virtual size (absolute, never relative, so it is idempotent); `format` is the
        /// image's, recorded when it was created (never probed from content a guest wrote).
        case resize(sizeMiB: Int, format: DiskFormat)
        case delete
    }
    /// Unique in the cluster (`ClusterState.nextOperationID`); results name it.
    public var id: Int
    public var volume: String
    public var disk: String
    public var action: Action
    public init(id: Int, volume: String, disk: String, action: Action) {
        self.id = id
        self.volume = volume
        self.disk = disk
        self.action = action
    }
}

/// How a disk operation ended, as the node that ran it reports it.
public enum DiskOperationOutcome: Codable, Sendable, Equatable {
    /// The image is as asked; `probe` is the volume seen right after.
    case succeeded(VolumeProbe)
    case failed(String)
}
