/// One guest known to a libvirt daemon.
public struct DomainSummary: Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var state: DomainState
    /// Has a running (or paused) QEMU process.
    public var isActive: Bool
    /// Has a persistent definition (survives shut-off), as opposed to a transient guest.
    public var isPersistent: Bool
}
