import CorralCore

/// What the agent needs from a hypervisor. Results come back as `HypervisorEvent`s through
/// `report`, in the order they happened.
public protocol Hypervisor: Sendable {
    func start(_ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void)
    func stop(_ vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void)
    func migrate(_ job: MigrationJob, _ spec: VMSpec, to destination: String, report: @escaping @Sendable (HypervisorEvent) -> Void)
    /// A migration to this node has started; the VM arrives at switchover.
    func prepareIncoming(_ job: MigrationJob, _ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void)
    func setMigrationBandwidth(job: Int, vm: String, MiBps: Int)
    func abortMigration(job: Int, vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void)
    /// VMs running here now, for reconciliation at start-up.
    func inventory() -> [String]
}

/// A hypervisor that only keeps the books: VMs are placement records that "run" the moment
/// they are started. Used until a node is given a libvirt connection; nothing is executed.
public final class RecordOnlyHypervisor: Hypervisor {
    public init() {}
    public func start(_ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void) { report(.running(spec.name)) }
    public func stop(_ vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) { report(.stopped(vm, crashed: false)) }
    public func migrate(_ job: MigrationJob, _ spec: VMSpec, to destination: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        report(.migrationCompleted(job: job.id, vm: spec.name, downtimeMs: 0))
    }
    /// The record arrives with the migration: count it as running here from now on.
    public func prepareIncoming(_ job: MigrationJob, _ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        report(.running(spec.name))
    }
    public func setMigrationBandwidth(job: Int, vm: String, MiBps: Int) {}
    public func abortMigration(job: Int, vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        report(.migrationFailed(job: job, reason: "aborted"))
    }
    public func inventory() -> [String] { [] }
}
