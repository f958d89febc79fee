import CorralCore

/// Where a live migration goes: the destination node's name and the address its hypervisor
/// listens on (from the Corosync nodelist), from which the hypervisor builds its own URI.
public struct MigrationTarget: Sendable, Equatable {
    public var name: String
    public var address: String
    public init(name: String, address: String) {
        self.name = name
        self.address = address
    }
}

/// What the agent needs from a hypervisor. Every call returns at once; results come back as
/// `HypervisorEvent`s through `report`, in the order they happened. Implementations never
/// block the caller (the agent's serial loop).
///
/// Event contract:
/// - `start` → `.running(vm)` once the guest runs, or `.startFailed(vm, reason)`.
/// - `stop` → `.stopped(vm, crashed: false)` once the guest is gone (also when it was not running).
/// - `migrate` (on the source) → `.migrationProgress` about every 500 ms while it runs, then
///   exactly one of `.migrationCompleted(job, vm, downtimeMs)` (the guest now runs on the
///   destination and no longer here) or `.migrationFailed(job, reason)` (the guest still runs here).
/// - `abortMigration` → the pending `migrate` ends with `.migrationFailed`.
/// - Guests that stop on their own (crash, killed QEMU, guest power-off) → `.stopped(vm, crashed: true)`;
///   a guest arriving here by migration → `.running(vm)`. These come through the `watch` callback.
///   A guest leaving by migration produces no `.stopped`.
public protocol Hypervisor: Sendable {
    /// Starts delivering the unsolicited events above; called once before any other call.
    func watch(report: @escaping @Sendable (HypervisorEvent) -> Void)
    func start(_ spec: VMSpec, leaseTokens: [UInt64], report: @escaping @Sendable (HypervisorEvent) -> Void)
    func stop(_ vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void)
    func migrate(_ job: MigrationJob, _ spec: VMSpec, to destination: MigrationTarget, report: @escaping @Sendable (HypervisorEvent) -> Void)
    /// A migration to this node has started; the VM arrives at switchover.
    func prepareIncoming(_ job: MigrationJob, _ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void)
    /// Creates the guest paused, for a failover here that is not allowed yet: a later `start`
    /// only resumes it. Reports nothing; a guest that could not be staged is started afresh.
    func stage(_ spec: VMSpec)
    /// Destroys a staged guest that never ran. Reports nothing.
    func unstage(_ vm: String)
    func setMigrationBandwidth(job: Int, vm: String, MiBps: Int)
    func abortMigration(job: Int, vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void)
    /// Names of the guests running here now (blocking; called at start-up to reconcile).
    func inventory() throws -> [String]
}

/// A hypervisor that only keeps the books: VMs are placement records that "run" the moment
/// they are started. For nodes without libvirt (`--hypervisor none`); nothing is executed.
public final class RecordOnlyHypervisor: Hypervisor {
    public init() {}
    public func watch(report: @escaping @Sendable (HypervisorEvent) -> Void) {}
    public func start(_ spec: VMSpec, leaseTokens: [UInt64], report: @escaping @Sendable (HypervisorEvent) -> Void) { report(.running(spec.name)) }
    public func stop(_ vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) { report(.stopped(vm, crashed: false)) }
    public func migrate(_ job: MigrationJob, _ spec: VMSpec, to destination: MigrationTarget, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        report(.migrationCompleted(job: job.id, vm: spec.name, downtimeMs: 0))
    }
    /// The record arrives with the migration: count it as running here from now on.
    public func prepareIncoming(_ job: MigrationJob, _ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        report(.running(spec.name))
    }
    public func stage(_ spec: VMSpec) {}
    public func unstage(_ vm: String) {}
    public func setMigrationBandwidth(job: Int, vm: String, MiBps: Int) {}
    public func abortMigration(job: Int, vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        report(.migrationFailed(job: job, reason: "aborted"))
    }
    public func inventory() throws -> [String] { [] }
}
