/// A Corosync node id: stable for the life of a node, the key of everything node-shaped.
public typealias NodeID = UInt32

/// Milliseconds on the local monotonic clock of the node that runs the core.
/// Only the shell reads the clock; the core receives it with every input.
public typealias Millis = Int64

/// What a host offers to VMs. Memory is a hard limit; vCPUs may be over-committed by a ratio.
public struct Capacity: Codable, Sendable, Equatable, Hashable {
    public var memoryMiB: Int
    public var vcpus: Int
    public init(memoryMiB: Int, vcpus: Int) {
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
    }
}

/// How urgently a VM must run: high is placed first when capacity is short.
public enum Priority: String, Codable, Sendable, CaseIterable, Comparable {
    case low, medium, high
    var rank: Int {
        switch self {
        case .low: 0
        case .medium: 1
        case .high: 2
        }
    }
    public static func < (a: Priority, b: Priority) -> Bool { a.rank < b.rank }
}
