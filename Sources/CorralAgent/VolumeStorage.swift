import CorralCore

/// What the agent needs from the storage of its volumes. Calls return at once; each answers
/// once through `report` (a disk operation with `.operationFinished`, a look with `.probed`).
public protocol VolumeStorage: Sendable {
    /// Brings the image to the operation's end state. What is already there counts: an image
    /// of the asked size is created or resized already, a missing one is deleted already, so a
    /// new coordinator repeating an operation whose answer it never saw does nothing twice.
    func run(_ operation: DiskOperation, volumePath: String, report: @escaping @Sendable (StorageEvent) -> Void)
    /// Whether the volume's directory is reachable (a writable directory) and its free space.
    func probe(_ volume: String, path: String, report: @escaping @Sendable (StorageEvent) -> Void)
}

/// Storage that only keeps the books: every operation succeeds and every volume has 1 TiB
/// free. For the simulator, whose hosts have no disks.
public struct RecordOnlyVolumeStorage: VolumeStorage {
    static let probe = VolumeProbe(reachable: true, freeMiB: 1 << 20, capacityMiB: 1 << 20)
    public init() {}
    public func run(_ operation: DiskOperation, volumePath: String, report: @escaping @Sendable (StorageEvent) -> Void) {
        report(.operationFinished(operation, .succeeded(Self.probe)))
    }
    public func probe(_ volume: String, path: String, report: @escaping @Sendable (StorageEvent) -> Void) {
        report(.probed(volume: volume, Self.probe))
    }
}
