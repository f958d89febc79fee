/// Where a volume's directory lives: on storage every node mounts, or on one node's own disks.
public enum VolumeKind: String, Codable, Sendable, Equatable {
    /// The same directory on every node (NFS, CephFS, GFS2; here a shared bind mount): a VM
    /// on it may run on any node that sees it.
    case shared
    /// One node's own directory: a VM on it runs only there, and is not highly available.
    case local
}

/// Whether a volume takes new work.
public enum VolumeState: String, Codable, Sendable, Equatable {
    case online
    /// Taken out of service by an operator: no VM on it is started, no disk operation runs.
    case maintenance
}

/// An image format `qemu-img` creates.
public enum DiskFormat: String, Codable, Sendable, Equatable, CaseIterable {
    case qcow2, raw
}

/// A disk image on a volume, as its coordinator last created or resized it.
public struct VolumeDisk: Codable, Sendable, Equatable {
    public var name: String
    public var format: DiskFormat
    /// Virtual size (what the guest sees), in MiB.
    public var sizeMiB: Int
    public init(name: String, format: DiskFormat, sizeMiB: Int) {
        self.name = name
        self.format = format
        self.sizeMiB = sizeMiB
    }
}

/// What a node saw when it last looked at a volume's directory.
public struct VolumeProbe: Codable, Sendable, Equatable {
    /// The directory exists and is writable from the node.
    public var reachable: Bool
    public var freeMiB: Int
    public var capacityMiB: Int
    public init(reachable: Bool, freeMiB: Int, capacityMiB: Int) {
        self.reachable = reachable
        self.freeMiB = freeMiB
        self.capacityMiB = capacityMiB
    }
}

/// A directory of disk images that Corral manages as one cluster object. Its coordinator is the
/// one node that changes its images (create, resize, delete), so two nodes never write the same
/// image's metadata; the operations wait in `operations`, in the replicated state, so a new
/// coordinator finds every one that the old one did not finish.
public struct Volume: Codable, Sendable, Equatable {
    public var name: String
    /// Absolute path of the directory, the same on every node that sees the volume.
    public var path: String
    public var kind: VolumeKind
    /// The node whose directory a local volume is; nil for a shared volume.
    public var owner: NodeID?
    public var state: VolumeState
    /// The node that runs this volume's disk operations; nil until one is chosen.
    public var coordinator: NodeID?
    /// An operator (or the balancer) asked the coordinator role to move here: the current
    /// coordinator hands it over once no operation of the volume runs on it.
    public var handoffTo: NodeID?
    /// Nodes whose last look at the directory failed: none of the volume's VMs runs there.
    public var unreachableFrom: [NodeID]
    /// From the coordinator's last look; 0 until it has looked.
    public var freeMiB: Int
    public var capacityMiB: Int
    /// Sorted by name.
    public var disks: [VolumeDisk]
    /// Waiting or running, oldest first; the coordinator runs them one at a time.
    public var operations: [DiskOperation]
    /// The last operations that failed, one line each ("DISK: create failed: why"); a disk's
    /// lines go once an operation on it succeeds.
    public var failures: [String]
    static let failuresKept = 8

    public init(name: String, path: String, kind: VolumeKind, owner: NodeID?) {
        self.name = name
        self.path = path
        self.kind = kind
        self.owner = owner
        self.state = .online
        self.coordinator = kind == .local ? owner : nil
        self.handoffTo = nil
        self.unreachableFrom = []
        self.freeMiB = 0
        self.capacityMiB = 0
        self.disks = []
        self.operations = []
        self.failures = []
    }

    public func disk(named name: String) -> VolumeDisk? { disks.first { $0.name == name } }

    /// The image file of a disk on this volume.
    public func imagePath(_ disk: String) -> String { path.hasSuffix("/") ? path + disk : path + "/" + disk }

    /// Whether `node` can use the volume's images (shared: any node that reaches it; local: its owner).
    public func isVisible(from node: NodeID) -> Bool {
        (kind == .shared || owner == node) && !unreachableFrom.contains(node)
    }

    /// MiB that waiting creates and resizes will take on top of the images already there.
    public var committedGrowthMiB: Int {
        operations.reduce(0) { total, op in
            switch op.action {
            case let .create(size, _): total + size
            case let .resize(size, _): total + max(0, size - (disk(named: op.disk)?.sizeMiB ?? 0))
            case .delete: total
            }
        }
    }
}
