import CorralAgent
import CorralCore

/// One simulated host as its agent shell sees it: the group it multicasts to, its hypervisor,
/// its watchdog and its fence agent. Every call lands in the simulation's event queue, as the
/// real ones land in libvirt, Corosync and the watchdog device, and the shell hears back
/// through its events. Single-threaded, like the whole simulation.
final class SimulatedNode: ShellWorld, Hypervisor, Watchdog, VolumeStorage, @unchecked Sendable {
    private unowned let simulation: Simulation
    let node: NodeID

    init(simulation: Simulation, node: NodeID) {
        self.simulation = simulation
        self.node = node
    }

    private var host: Simulation.Host { simulation.hosts[node]! }

    // MARK: ShellWorld

    func multicast(_ envelope: Envelope) { simulation.multicast(envelope, from: node) }
    var hasFenceAgent: Bool { simulation.scenario.settings.recovery.fenceAgent }

    func fence(_ target: NodeID, name: String, attempt: Int) {
        simulation.queue.push(.fenceDone(coordinator: node, incarnation: host.incarnation, target: target, attempt: attempt),
                              at: simulation.now + simulation.fenceAgentMs)
    }

    /// Simulated hooks succeed at once (no scenario patches yet).
    func runPatchHook(_ command: String, run: Int, phase: PatchPhase, attempt: Int, timeoutMs: Int) {
        post(.input(.patchHookFinished(run: run, phase: phase, attempt: attempt, PatchHookResult(status: 0, outputTail: "", durationMs: 0))))
    }

    func save(_ state: ClusterState) {}

    func reply(_ id: UInt64, _ reply: RequestReply) {
        let name = simulation.name(node)
        switch reply {
        case let .done(text): simulation.note("request done on \(name): \(text)")
        case let .refused(text): simulation.note("request refused on \(name): \(text)")
        case let .plan(lines): simulation.note("what-if on \(name): \(lines.joined(separator: "; "))")
        }
    }

    func log(_ line: String) {
        if simulation.agentLog { simulation.note("\(simulation.name(node)) log: \(line)") }
    }

    func post(_ event: AgentShell.Event) {
        simulation.queue.push(.shellEvent(node, incarnation: host.incarnation, event), at: simulation.now)
    }

    // MARK: VolumeStorage (every simulated volume is reachable, with 1 TiB free)

    static let volumeSpace = VolumeProbe(reachable: true, freeMiB: 1 << 20, capacityMiB: 1 << 20)

    func run(_ operation: DiskOperation, volumePath: String, report: @escaping @Sendable (StorageEvent) -> Void) {
        simulation.runDiskOperation(operation, on: node)
    }

    func probe(_ volume: String, path: String, report: @escaping @Sendable (StorageEvent) -> Void) {
        post(.input(.storage(.probed(volume: volume, Self.volumeSpace))))
    }

    // MARK: Hypervisor (the report closures are not needed: results come as simulation events)

    func watch(report: @escaping @Sendable (HypervisorEvent) -> Void) {}

    func start(_ spec: VMSpec, leaseTokens: [UInt64], report: @escaping @Sendable (HypervisorEvent) -> Void) {
        simulation.startVM(spec, on: node)
    }

    func stop(_ vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        simulation.stopVM(vm, on: node)
    }

    func migrate(_ job: MigrationJob, _ spec: VMSpec, to destination: MigrationTarget,
                 report: @escaping @Sendable (HypervisorEvent) -> Void) {
        simulation.migrateVM(job, spec, from: node)
    }

    func prepareIncoming(_ job: MigrationJob, _ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void) {}
    func stage(_ spec: VMSpec) {}
    func unstage(_ vm: String) {}
    func setMigrationBandwidth(job: Int, vm: String, MiBps: Int) { simulation.network.setCap(job: job, MiBps) }

    func abortMigration(job: Int, vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        if simulation.network.remove(job: job) != nil {
            simulation.queue.push(.hypervisor(node, incarnation: host.incarnation, .migrationFailed(job: job, reason: "aborted")),
                                  at: simulation.now)
        }
    }

    func inventory() throws -> [String] { host.running.sorted() }

    // MARK: Watchdog

    /// The lease check stands for the watchdog: it fires at the deadline. A broken watchdog
    /// still reports its problem at every renewal (the countdown armed before keeps running).
    func arm(until deadline: Millis) -> WatchdogProblem? {
        simulation.hosts[node]!.leaseUntil = deadline
        simulation.queue.push(.leaseCheck(node, incarnation: host.incarnation, until: deadline), at: deadline)
        return host.watchdogBroken ? WatchdogProblem("WDIOC_SETTIMEOUT: errno 22 (simulated)") : nil
    }

    func disarm() {}
    func inheritedDeadline() -> Millis? { nil }
}

extension Simulation {
    /// Into the sender's current view, unless the node's shell faults make it fail.
    func multicast(_ envelope: Envelope, from node: NodeID) {
        let h = hosts[node]!
        if now < h.multicastFailUntil, Int.random(in: 0..<100, using: &rng) < h.multicastFailPercent {
            return queue.push(.shellEvent(node, incarnation: h.incarnation,
                                          .input(.broadcastFailed(sequence: envelope.sequence, reason: "simulated multicast failure"))),
                              at: now + 1)
        }
        guard let view = h.view, views[view] != nil else { return }
        if inFlight[view] == nil { queue.push(.pump(view: view), at: now + scenario.timing.messageLatencyMs) }
        inFlight[view, default: []].append(envelope)
    }

    func startVM(_ spec: VMSpec, on node: NodeID) {
        checker.onStart(self, node, spec)
        let h = hosts[node]!
        guard !h.running.contains(spec.name), h.booting[spec.name] == nil else { return }
        let attempt = nextAttempt
        nextAttempt += 1
        hosts[node]!.booting[spec.name] = attempt
        queue.push(.vmBooted(node, incarnation: h.incarnation, vm: spec.name, attempt: attempt), at: now + scenario.timing.vmStartMs)
    }

    func stopVM(_ vm: String, on node: NodeID) {
        let h = hosts[node]!
        checker.onStop(self, node, vm)
        if now < h.stopFailUntil, h.running.contains(vm) {
            hosts[node]!.stopsFailed = true
            return queue.push(.hypervisor(node, incarnation: h.incarnation, .stopFailed(vm, reason: "simulated destroy failure")),
                              at: now + scenario.timing.vmStopMs)
        }
        hosts[node]!.booting[vm] = nil
        if h.running.contains(vm) {
            queue.push(.vmHalted(node, incarnation: h.incarnation, vm: vm, crashed: false), at: now + scenario.timing.vmStopMs)
        }
    }

    func migrateVM(_ job: MigrationJob, _ spec: VMSpec, from node: NodeID) {
        checker.onMigrate(self, node, job)
        let h = hosts[node]!
        guard h.running.contains(spec.name), hosts[job.destination]?.alive == true else {
            queue.push(.hypervisor(node, incarnation: h.incarnation, .migrationFailed(job: job.id, reason: "VM or destination not available")), at: now)
            return
        }
        network.start(job: job.id, vm: spec.name, source: node, destination: job.destination, memoryMiB: spec.memoryMiB,
                      dirtyMiBps: dirtyRates[spec.name] ?? 0, capMiBps: job.bandwidthMiBps,
                      setupMs: Int64(scenario.settings.migration.setupMs))
        scheduleMigrationStep()
    }
}
