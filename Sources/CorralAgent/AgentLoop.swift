import CorralCore
import CorosyncTransport
import Dispatch
import Foundation

/// The node agent: one serial loop feeds the shell (`AgentShell`, which owns the core) every
/// event in arrival order (Corosync deliveries and membership, ticks, operator requests,
/// hypervisor events), and the shell carries out the core's directives through this loop as
/// its `ShellWorld`. Long effects (multicasts, fence agents, saves) run off the loop and report
/// back into the same stream.
public final class AgentLoop: ShellWorld, @unchecked Sendable {
    /// Everything that can happen to the agent, in one ordered stream.
    enum Event: Sendable {
        case shell(AgentShell.Event)
        case reconnected(CorosyncGroup, expectedVotes: Int, addresses: [NodeID: String])
        case control(ControlRequest, reply: @Sendable (ControlResponse) -> Void)
        case shutdown
    }

    private let configuration: AgentConfiguration
    private let agentLog: AgentLog
    private let hypervisor: Hypervisor
    private let watchdog: Watchdog
    private let fenceAgent: FenceAgent?
    private let store: StateFileStore
    private let saver: StateSaver
    private let broadcaster: Broadcaster
    private let notifier: SystemdNotifier
    private let journal: EventJournal
    private let events: AsyncStream<Event>
    private let sink: AsyncStream<Event>.Continuation
    // Owned by the loop task only.
    private var shell: AgentShell!
    private var group: CorosyncGroup?
    private var expectedVotes: Int
    private var pendingReplies: [UInt64: @Sendable (ControlResponse) -> Void] = [:]
    private var nextRequest: UInt64 = 1
    /// What systemd was last told (`READY=1` once, then `STATUS=` when it changes).
    private var toldReady = false
    private var toldStatus = ""
    private var lastWatchdogPing: Millis?
    private var notifyFailureLogged = false

    public static let tickMs: Millis = 100

    /// Connects to Corosync (waiting for it if needed), loads the state file, builds the core.
    public init(configuration: AgentConfiguration, hypervisor: Hypervisor = RecordOnlyHypervisor(),
                watchdog: Watchdog = NoWatchdog(), log: AgentLog,
                notifier: SystemdNotifier = SystemdNotifier()) async {
        self.configuration = configuration
        self.notifier = notifier
        self.agentLog = log
        self.hypervisor = hypervisor
        self.watchdog = watchdog
        self.fenceAgent = configuration.fenceAgent.map { FenceAgent(command: $0) }
        self.store = StateFileStore(directory: configuration.stateDirectory)
        self.saver = StateSaver(store: store, log: log)
        self.journal = EventJournal(path: configuration.stateDirectory + "/events.jsonl")
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        (self.events, self.sink) = (events, sink)
        self.broadcaster = Broadcaster { sequence, reason in sink.yield(.shell(.input(.broadcastFailed(sequence: sequence, reason: reason)))) }
        let (group, votes, addresses) = await Self.connect(configuration.groupName, log: log)
        self.group = group
        self.expectedVotes = votes
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
        let core = CorralNode(spec: spec, state: state, fenceAgent: fenceAgent != nil, leaseExpiry: inherited, minimumLeaseMs: floor)
        shell = AgentShell(core: core, world: self, hypervisor: hypervisor, watchdog: watchdog, storage: DirectoryVolumeStorage(),
                           addresses: addresses)
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
            agentLog.write("cannot open control socket \(configuration.socketPath): \(error)")
            return
        }
        let serverTask = Task { await server.run() }
        let tickTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Self.tickMs))
                sink.yield(.shell(.tick))
            }
        }
        if let group { pump(group) }
        let links = LinkWatch { [sink] in sink.yield(.shell(.unreachable($0))) }
        let signals = Self.watchSignals(sink)
        hypervisor.watch { [sink] in sink.yield(.shell(.hypervisor($0))) }
        let inventory = await takeInventory()
        reportDifferences(inventory)
        shell.handle(.hypervisor(.inventory(inventory)), now: Self.now())
        for await event in events {
            if case .shutdown = event { break }
            handle(event)
            tellSystemd()
        }
        notifier.stopping(status: "stopping; " + (shell.core.localVMs.isEmpty ? "no guests here" : "\(shell.core.localVMs.count) guests stay under the lease"))
        shell.persist(now: Self.now(), force: true)
        saver.flush()
        journal.flush()
        broadcaster.flush()
        if shell.core.localVMs.isEmpty {
            watchdog.disarm()
        } else {
            agentLog.write("leaving the watchdog armed: \(shell.core.localVMs.count) VMs still run here under the lease; restart corrald before it ends (drain the node first to stop for good)")
        }
        signals.forEach { $0.cancel() }
        links.stop()
        tickTask.cancel()
        server.stop()
        await serverTask.value
        group?.close()
        agentLog.write("corrald stopped")
    }

    // MARK: events

    /// Handles `event`, then records what it changed in the history (`corral events`).
    private func handle(_ event: Event) {
        let before = (state: shell.core.state, members: shell.core.members, quorate: shell.core.quorate)
        handleOnly(event)
        let core = shell.core
        var changes = ClusterHistory.events(from: before.state, to: core.state)
        if core.members != before.members || core.quorate != before.quorate {
            changes.insert(ClusterHistory.membershipEvent(members: core.members.map { core.state.nodeName($0) }, quorate: core.quorate), at: 0)
        }
        journal.record(changes)
    }

    private func handleOnly(_ event: Event) {
        let now = Self.now()
        switch event {
        case let .shell(.corosync(.disconnected(error))):
            shell.handle(.corosync(.disconnected(error)), now: now)
            group = nil
            let sink = self.sink, name = configuration.groupName, log = agentLog
            Task {
                let (group, votes, addresses) = await Self.connect(name, log: log)
                sink.yield(.reconnected(group, expectedVotes: votes, addresses: addresses))
            }
        case let .shell(event): shell.handle(event, now: now)
        case let .reconnected(group, votes, addresses):
            shell.addresses = addresses
            self.group = group
            expectedVotes = votes
            agentLog.write("reconnected to Corosync")
            pump(group)
        case let .control(request, reply):
            switch request {
            case .status:
                var report = StatusReport(shell.core)
                report.leaseRemainingMs = shell.core.leaseExpiry.map { Int(max(0, $0 - now)) }
                report.eventCounts = journal.counts
                reply(.status(report))
            case let .events(after, limit): reply(.events(journal.entries(after: after, limit: limit)))
            case let .operate(request, whatIf):
                let id = nextRequest
                nextRequest += 1
                pendingReplies[id] = reply
                shell.handle(.input(.request(id: id, request, whatIf: whatIf)), now: now)
            }
        case .shutdown: break
        }
    }

    /// Keeps systemd informed: `READY=1` once the node can act (joined, quorate and synced; a
    /// sync alone proves nothing), before and after it a `STATUS=` line whenever membership,
    /// quorum, syncing or the guests here change, and `WATCHDOG=1` at half systemd's watchdog
    /// interval when `WatchdogSec=` is set. A failure to notify is logged once and never stops
    /// the agent.
    private func tellSystemd() {
        guard notifier.socketPath != nil else { return }
        let core = shell.core
        let members = core.members.count == 1 ? "alone" : "\(core.members.count) members"
        let status = "\(core.quorate ? "quorate" : "NOT quorate"), \(members)\(core.syncing ? ", syncing" : ""), \(core.localVMs.count) guests here"
        if !toldReady, core.canAct {
            toldReady = true
            toldStatus = status
            notifyFailure(notifier.ready(status: status))
        } else if status != toldStatus {
            toldStatus = status
            notifyFailure(notifier.status(status))
        }
        if let interval = notifier.watchdogInterval {
            let now = Self.now()
            let halfMs = Millis(interval.components.seconds * 500 + interval.components.attoseconds / 2_000_000_000_000_000)
            if lastWatchdogPing.map({ now - $0 >= halfMs }) ?? true {
                lastWatchdogPing = now
                notifyFailure(notifier.watchdog())
            }
        }
    }

    private func notifyFailure(_ failure: SystemdNotifier.NotifyFailure?) {
        guard let failure, !notifyFailureLogged else { return }
        notifyFailureLogged = true
        agentLog.write("\(failure) (further notify failures are not logged)")
    }

    private func pump(_ group: CorosyncGroup) {
        let sink = self.sink
        Task {
            for await event in group.events { sink.yield(.shell(.corosync(event))) }
        }
    }

    // MARK: the shell's world

    public func multicast(_ envelope: Envelope) {
        // Without a group the core already has a membership of itself, not quorate.
        guard let group else { return }
        broadcaster.send(envelope) { bytes in
            do throws(CorosyncError) {
                try group.multicastOnce(bytes)
                return .sent
            } catch {
                return error.isTransient ? .transient(error.description) : .failed(error.description)
            }
        }
    }

    public var hasFenceAgent: Bool { fenceAgent != nil }

    public func fence(_ node: NodeID, name: String, attempt: Int) {
        fenceAgent?.fence(name, log: agentLog) { [sink] in sink.yield(.shell(.fenceResult(node, attempt: attempt, fenced: $0))) }
    }

    public func runPatchHook(_ command: String, run: Int, phase: PatchPhase, attempt: Int, timeoutMs: Int) {
        PatchHook.run(command, node: configuration.nodeName, run: run, phase: phase, attempt: attempt, timeoutMs: timeoutMs,
                      log: agentLog) { [sink] in sink.yield(.shell(.input(.patchHookFinished(run: run, phase: phase, attempt: attempt, $0)))) }
    }

    /// Hands the state to the saver, which writes it off the loop (its failures are logged there).
    public func save(_ state: ClusterState) { saver.save(state) }

    public func reply(_ id: UInt64, _ reply: RequestReply) {
        if case let .refused(reason) = reply { journal.record([ClusterEvent(.refusal, configuration.nodeName, reason)]) }
        pendingReplies.removeValue(forKey: id)?(.reply(reply))
    }

    public func log(_ line: String) { agentLog.write(line) }

    public func post(_ event: AgentShell.Event) { sink.yield(.shell(event)) }

    // MARK: persistence

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

    /// What the hypervisor runs, asked until it answers (libvirtd may still be starting).
    private func takeInventory() async -> [String] {
        var attempt = 0
        while true {
            do { return try hypervisor.inventory() } catch {
                if attempt % 10 == 0 { agentLog.write("cannot list the hypervisor's guests: \(error); retrying") }
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
            guard let vm = shell.core.state.vms[name] else {
                agentLog.write("reconcile: \(name) runs here but is not a Corral VM; leaving it alone")
                continue
            }
            if vm.node != shell.core.id { agentLog.write("reconcile: \(name) runs here but the saved state has it on \(shell.core.state.nodeName(vm.node)); the cluster decides once quorate") }
        }
        for vm in shell.core.state.sortedVMs where vm.node == shell.core.id && vm.state == .running && !here.contains(vm.name) {
            agentLog.write("reconcile: the saved state runs \(vm.name) here but the hypervisor does not; it will be reported stopped")
        }
    }
}
