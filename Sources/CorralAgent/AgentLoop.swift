import CorralCore
import CorosyncTransport
import Dispatch
import Foundation

/// The node agent's shell: one serial loop owns the core and feeds it every input in arrival
/// order (Corosync deliveries and membership, ticks, operator requests, hypervisor events),
/// then carries out the directives. Long effects report back into the same stream.
public final class AgentLoop: @unchecked Sendable {
    /// Everything that can happen to the agent, in one ordered stream.
    enum Event: Sendable {
        case corosync(CorosyncEvent)
        case reconnected(CorosyncGroup, expectedVotes: Int, addresses: [NodeID: String])
        case tick
        case control(ControlRequest, reply: @Sendable (ControlResponse) -> Void)
        case hypervisor(HypervisorEvent)
        case fenceResult(NodeID, attempt: Int, fenced: Bool)
        case unreachable([NodeID])
        /// A failure the shell found on its own threads (a multicast that could not be sent).
        case input(Input)
        case shutdown
    }

    private let configuration: AgentConfiguration
    private let log: AgentLog
    private let hypervisor: Hypervisor
    private let watchdog: Watchdog
    private let fenceAgent: FenceAgent?
    private let store: StateFileStore
    private let saver: StateSaver
    private let broadcaster: Broadcaster
    private let events: AsyncStream<Event>
    private let sink: AsyncStream<Event>.Continuation
    // Owned by the loop task only.
    private var core: CorralNode
    private var group: CorosyncGroup?
    private var expectedVotes: Int
    /// Ring addresses by node id, for migration URIs.
    private var addresses: [NodeID: String]
    private var pendingReplies: [UInt64: @Sendable (ControlResponse) -> Void] = [:]
    private var nextRequest: UInt64 = 1
    private var dirty = false
    private var lastPersist: Millis = 0
    private var syncStarted: Millis?
    /// Corosync's events as the core's inputs; holds votequorum's last verdict.
    private var corosyncInputs = CorosyncInputs()
    /// The watchdog problem the core was last told about; nil while the watchdog works.
    private var watchdogProblem: WatchdogProblem?

    public static let tickMs: Millis = 100
    static let persistEveryMs: Millis = 200

    /// Connects to Corosync (waiting for it if needed), loads the state file, builds the core.
    public init(configuration: AgentConfiguration, hypervisor: Hypervisor = RecordOnlyHypervisor(),
                watchdog: Watchdog = NoWatchdog(), log: AgentLog) async {
        self.configuration = configuration
        self.log = log
        self.hypervisor = hypervisor
        self.watchdog = watchdog
        self.fenceAgent = configuration.fenceAgent.map { FenceAgent(command: $0) }
        self.store = StateFileStore(directory: configuration.stateDirectory)
        self.saver = StateSaver(store: store, log: log)
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        (self.events, self.sink) = (events, sink)
        self.broadcaster = Broadcaster { sequence, reason in sink.yield(.input(.broadcastFailed(sequence: sequence, reason: reason))) }
        let (group, votes, addresses) = await Self.connect(configuration.groupName, log: log)
        self.group = group
        self.expectedVotes = votes
        self.addresses = addresses
        var state = Self.loadState(store, log: log)
        state.settings.expectedVotes = votes
        let spec = NodeSpec(id: group.localNodeID, name: configuration.nodeName, capacity: configuration.capacity,
                            linkMiBps: configuration.linkMiBps)
        let inherited = watchdog.inheritedDeadline()
        if let inherited { log.write("inherited a self-fence lease valid for \(inherited - BootClock.now()) ms from the previous run") }
        // No healthy node's lease may run out while Corosync detects a failure: floor it at
        // detection + 1 s (for the sync and a heartbeat round trip after the new membership).
        let detection = (try? CorosyncConfig.detectionMs()) ?? nil
        let floor = detection.map { $0 + 1_000 } ?? 0
        core = CorralNode(spec: spec, state: state, fenceAgent: fenceAgent != nil, leaseExpiry: inherited, minimumLeaseMs: floor)
        log.write("Corosync detects failures within \(detection.map { "\($0) ms" } ?? "an unknown time"); lease \(core.leaseMs) ms (setting \(state.settings.recovery.leaseMs) ms, floor \(floor) ms)")
        log.write("corrald node \(spec.name) (id \(spec.id)) joined CPG group \(configuration.groupName); expected votes \(votes)")
    }

    /// Runs until SIGTERM or SIGINT.
    public func run() async {
        let sink = self.sink
        let server: ControlSocketServer
        do {
            server = try ControlSocketServer(path: configuration.socketPath, allowedGroup: configuration.allowedGroup) { line, peer in
                await Self.handleControl(line, peer: peer, sink: sink)
            }
        } catch {
            log.write("cannot open control socket \(configuration.socketPath): \(error)")
            return
        }
        let serverTask = Task { await server.run() }
        let tickTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Self.tickMs))
                sink.yield(.tick)
            }
        }
        if let group { pump(group) }
        let links = LinkWatch { [sink] in sink.yield(.unreachable($0)) }
        let signals = Self.watchSignals(sink)
        hypervisor.watch { [sink] in sink.yield(.hypervisor($0)) }
        let inventory = await takeInventory()
        reportDifferences(inventory)
        execute(core.step(.hypervisor(.inventory(inventory)), now: Self.now()))
        for await event in events {
            if case .shutdown = event { break }
            handle(event)
        }
        persist(force: true)
        saver.flush()
        broadcaster.flush()
        if core.localVMs.isEmpty {
            watchdog.disarm()
        } else {
            log.write("leaving the watchdog armed: \(core.localVMs.count) VMs still run here under the lease; restart corrald before it ends (drain the node first to stop for good)")
        }
        signals.forEach { $0.cancel() }
        links.stop()
        tickTask.cancel()
        server.stop()
        await serverTask.value
        group?.close()
        log.write("corrald stopped")
    }

    // MARK: events

    private func handle(_ event: Event) {
        let now = Self.now()
        let wasSyncing = core.syncing
        defer {
            if wasSyncing && !core.syncing, let since = syncStarted {
                log.write("state sync done in \(Self.now() - since) ms: epoch \(core.state.epoch), version \(core.state.version), \(core.state.vms.count) VMs")
            }
        }
        switch event {
        case let .corosync(event): onCorosync(event, now: now)
        case let .reconnected(group, votes, addresses):
            self.addresses = addresses
            self.group = group
            expectedVotes = votes
            log.write("reconnected to Corosync")
            pump(group)
        case .tick:
            execute(core.step(.tick, now: now))
            persist(force: false)
        case let .control(request, reply):
            switch request {
            case .status: reply(.status(StatusReport(core)))
            case let .operate(request, whatIf):
                let id = nextRequest
                nextRequest += 1
                pendingReplies[id] = reply
                execute(core.step(.request(id: id, request, whatIf: whatIf), now: now))
            }
        case let .hypervisor(event):
            if let line = Self.describe(event) { log.write(line) }
            execute(core.step(.hypervisor(event), now: now))
        case let .fenceResult(node, attempt, fenced): execute(core.step(.fenceAgentResult(node, attempt: attempt, fenced: fenced), now: now))
        case let .unreachable(nodes): execute(core.step(.unreachable(nodes), now: now))
        case let .input(input): execute(core.step(input, now: now))
        case .shutdown: break
        }
    }

    /// Corosync's events through `CorosyncInputs`. Quorum is votequorum's verdict, not a head
    /// count: the core gets the CPG members with votequorum's last verdict, again whenever that
    /// verdict changes without a CPG change, and not quorate after a CPG change that removed
    /// nodes votequorum still lists, until votequorum confirms (its notification and the CPG
    /// change come over separate connections in either order; see `CorosyncInputs`). A
    /// delivery that does not decode, or names another origin, reaches the core as `.undecodable`.
    private func onCorosync(_ event: CorosyncEvent, now: Millis) {
        switch event {
        case let .delivered(from, payload):
            let input = CorosyncInputs.delivery(from: from, payload: payload)
            if case let .undecodable(_, reason) = input { log.write("cannot use a message from node \(from): \(reason)") }
            execute(core.step(input, now: now))
        case let .membership(members, joined, left, agentOnly):
            let input = corosyncInputs.membership(members: members, left: left, agentOnly: agentOnly)
            let waiting = corosyncInputs.unconfirmedDepartures.sorted()
            log.write("membership \(members) joined \(joined) left \(left)\(agentOnly.isEmpty ? "" : " (agent only: \(agentOnly))") quorate=\(corosyncInputs.quorate)"
                      + (waiting.isEmpty ? "" : " (until votequorum confirms that \(waiting) left)"))
            syncStarted = now
            execute(core.step(input, now: now))
        case let .quorum(quorate, members):
            log.write("votequorum: quorate=\(quorate) members \(members)")
            if let input = corosyncInputs.quorum(quorate: quorate, members: members) {
                log.write("quorum now \(corosyncInputs.quorate) for the same membership \(corosyncInputs.members ?? [])")
                syncStarted = now
                execute(core.step(input, now: now))
            }
        case let .disconnected(error):
            log.write("lost Corosync: \(error); stopping local VMs and reconnecting")
            group = nil
            corosyncInputs.disconnected()
            execute(core.step(.membership(members: [core.id], quorate: false), now: now))
            let sink = self.sink, name = configuration.groupName, log = self.log
            Task {
                let (group, votes, addresses) = await Self.connect(name, log: log)
                sink.yield(.reconnected(group, expectedVotes: votes, addresses: addresses))
            }
        }
    }

    private func pump(_ group: CorosyncGroup) {
        let sink = self.sink
        Task {
            for await event in group.events { sink.yield(.corosync(event)) }
        }
    }

    // MARK: directives

    private func execute(_ directives: [Directive]) {
        let report: @Sendable (HypervisorEvent) -> Void = { [sink] in sink.yield(.hypervisor($0)) }
        for directive in directives {
            switch directive {
            case let .broadcast(envelope):
                // Without a group the core already has a membership of itself, not quorate.
                guard let group else { continue }
                broadcaster.send(envelope) { bytes in
                    do throws(CorosyncError) {
                        try group.multicastOnce(bytes)
                        return .sent
                    } catch {
                        return error.isTransient ? .transient(error.description) : .failed(error.description)
                    }
                }
            case let .startVM(spec, tokens):
                log.write("starting \(spec.name)")
                hypervisor.start(spec, leaseTokens: tokens, report: report)
            case let .stopVM(vm, reason):
                log.write("stopping \(vm): \(reason)")
                hypervisor.stop(vm, report: report)
            case let .migrateVM(job, spec, destination):
                guard let address = addresses[job.destination] else {
                    report(.migrationFailed(job: job.id, reason: "no ring address for \(destination) in the Corosync nodelist"))
                    continue
                }
                hypervisor.migrate(job, spec, to: MigrationTarget(name: destination, address: address), report: report)
            case let .prepareIncoming(job, spec): hypervisor.prepareIncoming(job, spec, report: report)
            case let .stageVM(spec): hypervisor.stage(spec)
            case let .unstageVM(vm):
                log.write("discarding the staged \(vm)")
                hypervisor.unstage(vm)
            case let .setMigrationBandwidth(job, vm, bw): hypervisor.setMigrationBandwidth(job: job, vm: vm, MiBps: bw)
            case let .abortMigration(job, vm): hypervisor.abortMigration(job: job, vm: vm, report: report)
            case let .runFenceAgent(node, name, attempt):
                guard let fenceAgent else {
                    log.write("no fence agent configured here; waiting for \(name)'s self-fence lease")
                    continue
                }
                log.write("running the fence agent against \(name)")
                fenceAgent.fence(name, log: log) { [sink] in sink.yield(.fenceResult(node, attempt: attempt, fenced: $0)) }
            case let .renewLease(until): armWatchdog(until: until)
            case let .reply(id, reply): pendingReplies.removeValue(forKey: id)?(.reply(reply))
            case .stateChanged: dirty = true
            case let .log(text): log.write(text)
            }
        }
    }

    /// Renews the watchdog; a problem is told to the core once (the same problem again at the
    /// next renewal is not news), and the log says when the watchdog works again.
    private func armWatchdog(until deadline: Millis) {
        let problem = watchdog.arm(until: deadline)
        guard problem != watchdogProblem else { return }
        watchdogProblem = problem
        guard let problem else { return log.write("the watchdog is armed as asked again") }
        log.write("watchdog: \(problem)")
        // Queued, not stepped here: this runs among the directives of an earlier step, which
        // must all be carried out before the core's next output.
        sink.yield(.input(.watchdogFailed(reason: problem.description)))
    }

    // MARK: persistence

    /// Hands the state to the saver, which writes it off the loop (its failures are logged there).
    private func persist(force: Bool) {
        let now = Self.now()
        guard dirty, force || now - lastPersist >= Self.persistEveryMs else { return }
        saver.save(core.state)
        dirty = false
        lastPersist = now
    }

    static func loadState(_ store: StateFileStore, log: AgentLog) -> ClusterState {
        do {
            guard let bytes = try store.load() else { return ClusterState() }
            return try JSONCoding.decode(ClusterState.self, from: bytes)
        } catch {
            log.write("state file \(store.statePath) is unreadable (\(error)); starting empty and recovering the state from the cluster")
            return ClusterState()
        }
    }

    // MARK: helpers

    /// Joins the CPG group, retrying every second until Corosync answers.
    static func connect(_ name: String, log: AgentLog) async -> (CorosyncGroup, Int, [NodeID: String]) {
        var attempt = 0
        while true {
            do {
                let group = try CorosyncGroup(groupName: name)
                let votes = try CorosyncConfig.expectedVotes()
                return (group, max(1, votes), try CorosyncConfig.nodeAddresses())
            } catch {
                if attempt % 10 == 0 { log.write("cannot join Corosync group \(name): \(error); retrying") }
                attempt += 1
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    static func handleControl(_ line: [UInt8], peer: PeerCredentials, sink: AsyncStream<Event>.Continuation) async -> [UInt8] {
        let request: ControlRequest
        do { request = try JSONCoding.decode(ControlRequest.self, from: line) } catch {
            return JSONCoding.encode(ControlResponse.error("malformed request: \(String(describing: error).prefix(200))"))
        }
        let response = await withCheckedContinuation { (continuation: CheckedContinuation<ControlResponse, Never>) in
            sink.yield(.control(request, reply: { continuation.resume(returning: $0) }))
        }
        return JSONCoding.encode(response)
    }

    static func watchSignals(_ sink: AsyncStream<Event>.Continuation) -> [DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { sink.yield(.shutdown) }
            source.resume()
            return source
        }
    }

    static func now() -> Millis { BootClock.now() }

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

    /// What the hypervisor runs, asked until it answers (libvirtd may still be starting).
    private func takeInventory() async -> [String] {
        var attempt = 0
        while true {
            do { return try hypervisor.inventory() } catch {
                if attempt % 10 == 0 { log.write("cannot list the hypervisor's guests: \(error); retrying") }
                attempt += 1
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Start-up reconciliation: says where the hypervisor and the saved state disagree. The core
    /// then acts on it once quorate (reporting a VM it should run as stopped, stopping one the
    /// cluster runs elsewhere); guests the cluster does not know are left alone.
    private func reportDifferences(_ running: [String]) {
        let here = Set(running)
        for name in running.sorted() {
            guard let vm = core.state.vms[name] else {
                log.write("reconcile: \(name) runs here but is not a Corral VM; leaving it alone")
                continue
            }
            if vm.node != core.id { log.write("reconcile: \(name) runs here but the saved state has it on \(core.state.nodeName(vm.node)); the cluster decides once quorate") }
        }
        for vm in core.state.sortedVMs where vm.node == core.id && vm.state == .running && !here.contains(vm.name) {
            log.write("reconcile: the saved state runs \(vm.name) here but the hypervisor does not; it will be reported stopped")
        }
    }
}
