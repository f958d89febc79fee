import CorralCore
import CorosyncTransport

/// What the shell drives besides the hypervisor and the watchdog. `AgentLoop` implements it
/// over Corosync, the fence agent's process, the state file and the log file; the simulator
/// over its simulated group and hosts. Every call returns at once; results come back later as
/// `AgentShell.Event`s.
public protocol ShellWorld: AnyObject {
    /// Multicast with agreed ordering; a failure comes back as `.input(.broadcastFailed)`.
    func multicast(_ envelope: Envelope)
    /// Whether a fence agent is configured here.
    var hasFenceAgent: Bool { get }
    /// Run the fence agent against a node; answer with `.fenceResult(node, attempt:, fenced:)`.
    func fence(_ node: NodeID, name: String, attempt: Int)
    /// Run a patch hook on this node; answer with `.input(.patchHookFinished(…))`.
    func runPatchHook(_ command: String, run: Int, phase: PatchPhase, attempt: Int, timeoutMs: Int)
    /// Persist the state (the world may write it off the caller's thread).
    func save(_ state: ClusterState)
    /// Answer the operator request `id` (from `.input(.request(id:…))`).
    func reply(_ id: UInt64, _ reply: RequestReply)
    func log(_ line: String)
    /// Queue an event behind the ones waiting: for what the shell learns while it carries out
    /// a step's directives, which must all run before the core's next output.
    func post(_ event: AgentShell.Event)
}

/// The node agent's shell without threads or sockets: it owns the core, turns what Corosync,
/// the hypervisor, the fence agent and time report into the core's inputs (quorum from
/// votequorum's verdict, undecodable deliveries reported), and carries out the core's
/// directives through `ShellWorld`, `Hypervisor` and `Watchdog`. `AgentLoop` feeds it from
/// one ordered stream; `corral simulate` feeds every simulated node's shell the same way,
/// so the simulator runs the real shell and not only the core.
public final class AgentShell {
    /// Everything that can happen to the shell, in arrival order.
    public enum Event: Sendable {
        case corosync(CorosyncEvent)
        case tick
        case hypervisor(HypervisorEvent)
        case fenceResult(NodeID, attempt: Int, fenced: Bool)
        case unreachable([NodeID])
        /// An input for the core as it is (an operator request, a shell failure, a delivery
        /// the world already decoded).
        case input(Input)
    }

    public private(set) var core: CorralNode
    private unowned let world: ShellWorld
    private let hypervisor: Hypervisor
    private let watchdog: Watchdog
    private let storage: VolumeStorage
    /// Ring addresses by node id, for migration URIs.
    public var addresses: [NodeID: String]
    /// Corosync's events as the core's inputs; holds votequorum's last verdict.
    private var corosyncInputs = CorosyncInputs()
    /// The watchdog problem the core was last told about; nil while the watchdog works.
    private var watchdogProblem: WatchdogProblem?
    private var dirty = false
    private var lastPersist: Millis = 0
    private var syncStarted: Millis?
    static let persistEveryMs: Millis = 200

    public init(core: CorralNode, world: ShellWorld, hypervisor: Hypervisor, watchdog: Watchdog, storage: VolumeStorage,
                addresses: [NodeID: String]) {
        self.core = core
        self.world = world
        self.hypervisor = hypervisor
        self.watchdog = watchdog
        self.storage = storage
        self.addresses = addresses
    }

    /// Feeds one event to the core and carries out what it asks.
    public func handle(_ event: Event, now: Millis) {
        let wasSyncing = core.syncing
        switch event {
        case let .corosync(event): onCorosync(event, now: now)
        case .tick:
            step(.tick, now: now)
            persist(now: now, force: false)
        case let .hypervisor(event):
            if let line = Self.describe(event) { world.log(line) }
            step(.hypervisor(event), now: now)
        case let .fenceResult(node, attempt, fenced): step(.fenceAgentResult(node, attempt: attempt, fenced: fenced), now: now)
        case let .unreachable(nodes): step(.unreachable(nodes), now: now)
        case let .input(input): step(input, now: now)
        }
        if wasSyncing && !core.syncing, let since = syncStarted {
            world.log("state sync done in \(now - since) ms: epoch \(core.state.epoch), version \(core.state.version), \(core.state.vms.count) VMs")
        }
    }

    /// Writes the state now if it changed (at shutdown).
    public func persist(now: Millis, force: Bool) {
        guard dirty, force || now - lastPersist >= Self.persistEveryMs else { return }
        world.save(core.state)
        dirty = false
        lastPersist = now
    }

    private func step(_ input: Input, now: Millis) {
        execute(core.step(input, now: now))
    }

    /// Corosync's events through `CorosyncInputs`: quorum is votequorum's verdict (a change of
    /// it alone is a `.quorum` input), a delivery that does not decode or names another origin
    /// is `.undecodable`, and a lost connection is a membership of this node alone, not quorate.
    private func onCorosync(_ event: CorosyncEvent, now: Millis) {
        switch event {
        case let .delivered(from, payload):
            let input = CorosyncInputs.delivery(from: from, payload: payload)
            if case let .undecodable(_, reason) = input { world.log("cannot use a message from node \(from): \(reason)") }
            step(input, now: now)
        case let .membership(members, joined, left, agentOnly):
            let input = corosyncInputs.membership(members: members, left: left, agentOnly: agentOnly)
            let waiting = corosyncInputs.unconfirmedDepartures.sorted()
            world.log("membership \(members) joined \(joined) left \(left)\(agentOnly.isEmpty ? "" : " (agent only: \(agentOnly))") quorate=\(corosyncInputs.quorate)"
                      + (waiting.isEmpty ? "" : " (until votequorum confirms that \(waiting) left)"))
            syncStarted = now
            step(input, now: now)
        case let .quorum(quorate, members):
            world.log("votequorum: quorate=\(quorate) members \(members)")
            if let input = corosyncInputs.quorum(quorate: quorate, members: members) {
                syncStarted = now
                step(input, now: now)
            }
        case let .disconnected(error):
            world.log("lost Corosync: \(error); stopping local VMs and reconnecting")
            corosyncInputs.disconnected()
            step(.membership(members: [core.id], quorate: false), now: now)
        }
    }

    private func execute(_ directives: [Directive]) {
        let world = self.world
        let report: @Sendable (HypervisorEvent) -> Void = { [world = UncheckedWorld(world)] in world.value.post(.hypervisor($0)) }
        for directive in directives {
            switch directive {
            case let .broadcast(envelope): world.multicast(envelope)
            case let .startVM(spec, tokens):
                world.log("starting \(spec.name)")
                hypervisor.start(spec, leaseTokens: tokens, report: report)
            case let .stopVM(vm, reason):
                world.log("stopping \(vm): \(reason)")
                hypervisor.stop(vm, report: report)
            case let .migrateVM(job, spec, destination):
                guard let address = addresses[job.destination] else {
                    world.post(.hypervisor(.migrationFailed(job: job.id, reason: "no ring address for \(destination) in the Corosync nodelist")))
                    continue
                }
                hypervisor.migrate(job, spec, to: MigrationTarget(name: destination, address: address), report: report)
            case let .prepareIncoming(job, spec): hypervisor.prepareIncoming(job, spec, report: report)
            case let .stageVM(spec): hypervisor.stage(spec)
            case let .unstageVM(vm):
                world.log("discarding the staged \(vm)")
                hypervisor.unstage(vm)
            case let .setMigrationBandwidth(job, vm, bw): hypervisor.setMigrationBandwidth(job: job, vm: vm, MiBps: bw)
            case let .abortMigration(job, vm): hypervisor.abortMigration(job: job, vm: vm, report: report)
            case let .runFenceAgent(node, name, attempt):
                guard world.hasFenceAgent else {
                    world.log("no fence agent configured here; waiting for \(name)'s self-fence lease")
                    continue
                }
                world.log("running the fence agent against \(name)")
                world.fence(node, name: name, attempt: attempt)
            case let .renewLease(until): armWatchdog(until: until)
            case let .runDiskOperation(operation, path):
                world.log("disk operation \(operation.id): \(operation.action.verb) \(operation.volume)/\(operation.disk)")
                storage.run(operation, volumePath: path) { [world = UncheckedWorld(world)] in world.value.post(.input(.storage($0))) }
            case let .probeVolume(volume, path):
                storage.probe(volume, path: path) { [world = UncheckedWorld(world)] in world.value.post(.input(.storage($0))) }
            case let .reply(id, reply): world.reply(id, reply)
            case let .runPatchHook(run, phase, attempt, command, timeoutMs):
                world.runPatchHook(command, run: run, phase: phase, attempt: attempt, timeoutMs: timeoutMs)
            case .stateChanged: dirty = true
            case let .log(text): world.log(text)
            }
        }
    }

    /// Renews the watchdog; a problem is told to the core once (the same problem again at the
    /// next renewal is not news), and the log says when the watchdog works again.
    private func armWatchdog(until deadline: Millis) {
        let problem = watchdog.arm(until: deadline)
        guard problem != watchdogProblem else { return }
        watchdogProblem = problem
        guard let problem else { return world.log("the watchdog is armed as asked again") }
        world.log("watchdog: \(problem)")
        world.post(.input(.watchdogFailed(reason: problem.description)))
    }

    /// A log line for each hypervisor event worth keeping (progress is too chatty).
    static func describe(_ event: HypervisorEvent) -> String? {
        switch event {
        case let .running(vm): "\(vm) is running here"
        case let .stopped(vm, crashed): crashed ? "\(vm) stopped on its own (crash or power-off)" : "\(vm) stopped"
        case let .startFailed(vm, reason): "\(vm) failed to start: \(reason)"
        case let .migrationCompleted(job, vm, downtime): "migration \(job) of \(vm) completed, downtime \(downtime) ms"
        case let .migrationFailed(job, reason): "migration \(job) failed: \(reason)"
        case let .migrationOverhead(ms): "a migration from here spent \(ms) ms in set-up and switch-over"
        case let .stopFailed(vm, reason): "stopping \(vm) failed: \(reason)"
        case let .queryFailed(vm, reason): "could not ask libvirt about \(vm): \(reason)"
        case .migrationProgress, .inventory: nil
        }
    }
}

/// The world, carried into the hypervisor's `@Sendable` report callbacks. `post` is the one
/// call made from them, and every world makes it safe from any thread (`AgentLoop` yields
/// into its event stream; the simulator is single-threaded).
private struct UncheckedWorld: @unchecked Sendable {
    unowned let value: ShellWorld
    init(_ value: ShellWorld) { self.value = value }
}
