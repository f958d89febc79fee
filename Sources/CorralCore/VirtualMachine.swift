/// The operator's description of a VM: everything placement needs.
public struct VMSpec: Codable, Sendable, Equatable {
    public var name: String
    public var memoryMiB: Int
    public var vcpus: Int
    public var priority: Priority
    /// Node names in order of preference; the first is where failback returns the VM.
    public var preferredOwners: [String]
    /// Two VMs of the same class never share a node while any other placement exists.
    public var antiAffinityClass: String?
    /// Restarted elsewhere when its node fails.
    public var highlyAvailable: Bool
    /// Disk paths on cluster-shared volumes; the VM runs only where all their leases are held.
    public var disks: [String]
    /// The image format of each disk, in `disks` order, when one is not raw (a qcow2 disk made
    /// on a volume); nil means every disk is raw, as before volumes.
    public var diskFormats: [DiskFormat]?

    public init(name: String, memoryMiB: Int, vcpus: Int = 1, priority: Priority = .medium,
                preferredOwners: [String] = [], antiAffinityClass: String? = nil,
                highlyAvailable: Bool = true, disks: [String] = []) {
        self.name = name
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.priority = priority
        self.preferredOwners = preferredOwners
        self.antiAffinityClass = antiAffinityClass
        self.highlyAvailable = highlyAvailable
        self.disks = disks
        self.diskFormats = nil
    }

    /// The format of disk `index` (raw unless recorded otherwise).
    public func diskFormat(_ index: Int) -> DiskFormat {
        guard let formats = diskFormats, index < formats.count else { return .raw }
        return formats[index]
    }
}

/// Where a VM is in its life, as the replicated state records it.
public enum VMState: String, Codable, Sendable, Equatable {
    /// Not running and not meant to.
    case stopped
    /// Meant to run, waiting for a node; `reason` says why it is not placed yet.
    case pending
    /// Placed; its node has been told to start it.
    case starting
    case running
    /// Running on `node` while a live migration to another node is in flight.
    case migrating
    /// Its node has been told to stop it.
    case stopping
    /// Its migration's source was fenced while the migration ran: the guest may have switched
    /// over to `node` (the destination) or not. Nothing places it until that node says which
    /// (it adopts the guest, or reports it absent) or is fenced itself.
    case awaitingDestination = "awaiting-destination"
    /// Gave up: crashed too often. Stays stopped until an operator starts it.
    case failed
}

public struct VirtualMachine: Codable, Sendable, Equatable {
    public var spec: VMSpec
    public var desiredRunning: Bool
    public var node: NodeID?
    public var state: VMState
    /// Why the VM is pending or failed; empty otherwise.
    public var reason: String
    /// Measured page dirty rate (MiB/s), used to decide when and how fast to migrate it.
    public var dirtyRateMiBps: Int
    /// Crashes since the operator last started it; drives restart-in-place versus failover.
    public var crashCount: Int
    /// Where it crashed last: restarted there while `crashCount` allows, avoided afterwards.
    public var lastCrashNode: NodeID?

    public init(spec: VMSpec, desiredRunning: Bool = true, dirtyRateMiBps: Int = 0) {
        self.spec = spec
        self.desiredRunning = desiredRunning
        self.node = nil
        self.state = desiredRunning ? .pending : .stopped
        self.reason = desiredRunning ? "not placed yet" : ""
        self.dirtyRateMiBps = dirtyRateMiBps
        self.crashCount = 0
        self.lastCrashNode = nil
    }

    public var name: String { spec.name }
    /// Occupies memory on `node` (also while starting, stopping or migrating away).
    public var occupiesNode: Bool { node != nil && state != .stopped && state != .pending && state != .failed }
}
