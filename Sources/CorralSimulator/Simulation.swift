import CorralAgent
import CorosyncTransport
import CorralCore

/// A seeded discrete-event simulation of a whole cluster: every node runs the real agent
/// shell (`AgentShell`, which owns the real `CorralNode`), fed Corosync's events (CPG
/// membership and votequorum notifications, in either order), its hypervisor's events, time
/// and operator requests, and carrying out the core's directives on the simulated world
/// (`SimulatedNode` is its group, hypervisor, watchdog and fence agent); the group layer delivers multicasts in one total order per membership view
/// (virtual synchrony: a message is delivered to all members of its view or to none);
/// hypervisors start, stop and migrate VMs over shared links; faults come from the scenario.
/// Invariants (DESIGN §3) are checked at every step by `InvariantChecker`.
public final class Simulation {
    enum Event {
        case tick(NodeID, incarnation: Int)
        case pump(view: Int)
        case reconfigure
        case hypervisor(NodeID, incarnation: Int, HypervisorEvent)
        case vmBooted(NodeID, incarnation: Int, vm: String, attempt: Int)
        case vmHalted(NodeID, incarnation: Int, vm: String, crashed: Bool)
        case migrationStep
        case scripted(ScenarioEvent.Action)
        case leaseCheck(NodeID, incarnation: Int, until: Millis)
        case fenceDone(coordinator: NodeID, incarnation: Int, target: NodeID, attempt: Int)
        /// Something the node's shell queued for itself (a failure of its own, a hypervisor report).
        case shellEvent(NodeID, incarnation: Int, AgentShell.Event)
        /// votequorum's notification reaching one node (it travels apart from CPG's stream).
        case quorumNotice(NodeID, incarnation: Int, quorate: Bool, members: [NodeID])
    }

    struct Host {
        var shell: AgentShell
        /// The node's group, hypervisor, watchdog and fence agent as its shell sees them.
        var world: SimulatedNode
        var config: Scenario.NodeConfig
        var core: CorralNode { shell.core }
        /// The members of the last CPG membership this node's shell was told about.
        var lastMembers: [NodeID] = []
        /// The next multicast from this node reaches one member garbled.
        var garbleNext = false
        /// The watchdog refuses to be armed from now on.
        var watchdogBroken = false
        var alive = true
        var hung = false
        var incarnation = 0
        var partition = 0
        var view: Int?
        /// Hypervisor truth: the VMs this host runs.
        var running: Set<String> = []
        var booting: [String: Int] = [:]
        var leaseUntil: Millis?
        /// When it last came back from a hang: a hang within the lease excuses a watchdog reset.
        var resumedAt: Millis?
        /// Only the agent is frozen: inputs wait in `backlog` until it is resumed.
        var agentHung = false
        var backlog: [AgentShell.Event] = []
        var multicastFailPercent = 0
        var multicastFailUntil: Int64 = 0
        var stopFailUntil: Int64 = 0
        /// Stops failed at some point: a watchdog reset at lease end is then the expected outcome.
        var stopsFailed = false
        var crashOnSwitchover = false
    }

    public let scenario: Scenario
    public let seed: UInt64
    var rng: SplitMix64
    var now: Int64 = 0
    var queue = EventQueue<Event>()
    var hosts: [NodeID: Host] = [:]
    var views: [Int: [NodeID]] = [:]
    var nextView = 1
    var nextAttempt = 1
    var network = MigrationNetwork()
    var migrationStepScheduled = false
    var report: SimulationReport
    var checker = InvariantChecker()
    var dirtyRates: [String: Int] = [:]
    var timelineState: [String: String] = [:]
    /// Disk operations handed to a node's storage: until when they run there, and in which
    /// incarnation of the node (a crash ends them). Two live runs of one operation at once
    /// break the rule that a volume's images are changed by one node at a time.
    var diskOperationsRunning: [Int: [NodeID: (incarnation: Int, until: Millis)]] = [:]
    /// Bounds every run: a livelock becomes a reported violation instead of a hang.
    let eventBudget = 3_000_000
    /// Ends the run early once the report shows what a benchmark waits for.
    public var stopWhen: ((SimulationReport) -> Bool)?
    /// Puts every agent's log lines in the timeline (`corral simulate --core-log`), to read
    /// why a seed failed; off by default, so reports and traces do not depend on log wording.
    public var agentLog = false
    /// Per view, multicasts sent and not yet delivered, in send order.
    var inFlight: [Int: [Envelope]] = [:]
    /// How long a fence agent takes to power its target off and answer.
    var fenceAgentMs: Int64 = 200

    public init(scenario: Scenario, seed: UInt64) {
        self.scenario = scenario
        self.seed = seed
        self.rng = SplitMix64(seed: seed)
        self.report = SimulationReport(scenario: scenario.name, seed: seed)
        var state = ClusterState(settings: scenario.settings)
        for (i, n) in scenario.nodes.enumerated() {
            let id = NodeID(i + 1)
            _ = state.apply(.registerNode(NodeSpec(id: id, name: n.name, capacity: n.capacity, linkMiBps: n.linkMiBps)))
        }
        for vm in scenario.vms {
            dirtyRates[vm.spec.name] = vm.dirtyRateMiBps
            _ = state.apply(.addVM(vm.spec, running: vm.running, dirtyRateMiBps: vm.dirtyRateMiBps))
        }
        for (i, n) in scenario.nodes.enumerated() {
            let id = NodeID(i + 1)
            let spec = NodeSpec(id: id, name: n.name, capacity: n.capacity, linkMiBps: n.linkMiBps)
            hosts[id] = makeHost(spec: spec, state: state, config: n)
            queue.push(.tick(id, incarnation: 0), at: Int64(i) * 7 % scenario.timing.tickMs)
        }
        queue.push(.reconfigure, at: 500)
        for e in scenario.events { queue.push(.scripted(e.action), at: e.atMs) }
    }

    /// Runs to the scenario's end, then checks liveness and agreement.
    public func run() -> SimulationReport {
        var budget = eventBudget
        while let next = queue.nextTime, next <= scenario.durationMs {
            budget -= 1
            guard budget > 0 else {
                violation("event budget of \(eventBudget) exhausted (livelock?)")
                break
            }
            let (time, event) = queue.pop()!
            now = time
            handle(event)
            if let stopWhen, stopWhen(report) { break }
        }
        now = scenario.durationMs
        finish()
        return report
    }

    /// A node as it boots: a fresh agent (shell and core) over the state it kept.
    private func makeHost(spec: NodeSpec, state: ClusterState, config: Scenario.NodeConfig) -> Host {
        let world = SimulatedNode(simulation: self, node: spec.id)
        let fenceAgent = scenario.settings.recovery.fenceAgent
        let addresses = Dictionary(uniqueKeysWithValues: scenario.nodes.indices.map { (NodeID($0 + 1), "10.0.0.\($0 + 1)") })
        let shell = AgentShell(core: CorralNode(spec: spec, state: state, fenceAgent: fenceAgent), world: world,
                               hypervisor: world, watchdog: world, storage: world, addresses: addresses)
        return Host(shell: shell, world: world, config: config)
    }

    var ids: [NodeID] { hosts.keys.sorted() }
    func name(_ id: NodeID) -> String { hosts[id]?.config.name ?? "node\(id)" }
    func id(named name: String) -> NodeID? { ids.first { hosts[$0]!.config.name == name } }

    func note(_ text: String) { report.timeline.append(.init(atMs: now, text: text)) }
    func violation(_ text: String) { report.violations.append(.init(atMs: now, text: text)) }

    // MARK: event handling

    private func handle(_ event: Event) {
        switch event {
        case let .tick(node, inc):
            guard let h = hosts[node], h.alive, h.incarnation == inc else { return }
            if !h.hung && !h.agentHung { handle(node, .tick) }
            queue.push(.tick(node, incarnation: inc), at: now + scenario.timing.tickMs)
        case let .pump(view): pump(view)
        case .reconfigure: reconfigure()
        case let .hypervisor(node, inc, ev):
            guard let h = hosts[node], h.alive, h.incarnation == inc else { return }
            // A frozen agent reads its hypervisor's events once it runs again.
            if h.hung { return queue.push(.hypervisor(node, incarnation: inc, ev), at: now + scenario.timing.tickMs) }
            handle(node, .hypervisor(ev))
        case let .vmBooted(node, inc, vm, attempt): vmBooted(node, inc, vm, attempt)
        case let .vmHalted(node, inc, vm, crashed):
            guard hosts[node]?.incarnation == inc, hosts[node]!.running.remove(vm) != nil else { return }
            note("\(vm) stopped on \(name(node))\(crashed ? " (crashed)" : "")")
            queue.push(.hypervisor(node, incarnation: inc, .stopped(vm, crashed: crashed)), at: now)
        case .migrationStep: migrationStep()
        case let .scripted(action): perform(action)
        case let .leaseCheck(node, inc, until): leaseCheck(node, inc, until)
        case let .shellEvent(node, inc, event):
            guard hosts[node]?.incarnation == inc else { return }
            handle(node, event)
        case let .quorumNotice(node, inc, quorate, members):
            guard hosts[node]?.incarnation == inc else { return }
            handle(node, .corosync(.quorum(quorate: quorate, members: members)))
        case let .fenceDone(coordinator, inc, target, attempt):
            if let h = hosts[target], h.alive { powerOff(target, why: "fenced by fence agent") }
            guard hosts[coordinator]?.incarnation == inc else { return }
            handle(coordinator, .fenceResult(target, attempt: attempt, fenced: true))
        }
        switch event {
        case .pump, .reconfigure: recordStateChanges()
        default: break
        }
    }

    /// What a frozen agent missed, handed to it once neither it nor its host is frozen (its
    /// host may have been frozen whole while the agent was: the queue waits for both).
    private func handleBacklog(_ node: NodeID) {
        guard let h = hosts[node], !h.hung, !h.agentHung else { return }
        let backlog = h.backlog
        hosts[node]!.backlog = []
        for event in backlog { handle(node, event) }
    }

    /// Feeds one event to a node's agent shell, which steps its core and carries out what
    /// it asks through the node's `SimulatedNode`.
    func handle(_ node: NodeID, _ event: AgentShell.Event) {
        guard let h = hosts[node], h.alive, !h.hung else { return }
        // A frozen agent's events wait, as Corosync and libvirt queue them for its sockets.
        if h.agentHung { return hosts[node]!.backlog.append(event) }
        h.shell.handle(event, now: now)
        report.coreSteps += 1
        checker.afterStep(self, node)
    }

    // MARK: group communication

    /// Like Totem, a view delivers only while its token can circulate: while a member is dead,
    /// frozen or cut off, messages wait; if a new membership forms first, they are dropped.
    private func pump(_ view: Int) {
        guard let members = views[view] else { inFlight[view] = nil; return }
        guard members.allSatisfy({ reachable(members[0], $0) }) else {
            return queue.push(.pump(view: view), at: now + scenario.timing.migrationStepMs)
        }
        // Deliver what was sent before this pump; what those deliveries send waits for the next.
        let batch = inFlight[view] ?? []
        inFlight[view] = []
        for envelope in batch {
            deliver(envelope, to: members, in: view)
            guard views[view] != nil else { return }
        }
        if inFlight[view]?.isEmpty ?? true { inFlight[view] = nil } else {
            queue.push(.pump(view: view), at: now + scenario.timing.messageLatencyMs)
        }
    }

    private func deliver(_ envelope: Envelope, to members: [NodeID], in view: Int) {
        if case let .command(.declareFenced(target, method)) = envelope.body {
            checker.onFenced(self, target, method: method)
        }
        // A garbled copy reaches the first other member as bytes that do not decode.
        let garbledFor = hosts[envelope.origin]?.garbleNext == true ? members.first { $0 != envelope.origin } : nil
        if garbledFor != nil {
            hosts[envelope.origin]!.garbleNext = false
            note("a message from \(name(envelope.origin)) reaches \(name(garbledFor!)) garbled")
        }
        for member in members where hosts[member]?.view == view {
            if member == garbledFor {
                handle(member, .corosync(.delivered(from: envelope.origin, payload: Array("garbled".utf8))))
            } else {
                // Decoded already: the codec has tests of its own, and JSON for every copy would
                // slow the campaign several times over.
                handle(member, .input(.delivered(envelope)))
            }
        }
    }

    /// Forms new memberships from who is alive and who can reach whom, like Corosync after
    /// its token times out. Unchanged groups keep their view.
    func reconfigure() {
        var groups: [Int: [NodeID]] = [:]
        for id in ids where hosts[id]!.alive && !hosts[id]!.hung { groups[hosts[id]!.partition, default: []].append(id) }
        var current: [Int: [NodeID]] = [:]
        for key in groups.keys.sorted() {
            let members = groups[key]!
            if let existing = hosts[members[0]]!.view, views[existing] == members,
               members.allSatisfy({ hosts[$0]!.view == existing }) {
                current[existing] = members
                continue
            }
            let view = nextView
            nextView += 1
            current[view] = members
            for m in members { hosts[m]!.view = view }
        }
        let changed = current.keys.filter { views[$0] == nil }.sorted()
        views = current
        for id in ids where hosts[id]!.view.map({ current[$0] == nil }) ?? false { hosts[id]!.view = nil }
        for view in changed {
            let members = current[view]!
            let quorate = members.count * 2 > scenario.nodes.count
            note("membership [\(members.map(name).joined(separator: " "))]\(quorate ? "" : " (no quorum)")")
            for m in members { tellMembership(m, members: members, quorate: quorate) }
        }
    }

    /// Corosync tells a node's agent of a new membership over two channels: votequorum's
    /// notification and CPG's configuration change. By default votequorum's comes first, at the
    /// same instant; with `quorumLagMs` a node may get CPG's first and votequorum's up to that
    /// much later (drawn per node), as on real hosts.
    private func tellMembership(_ node: NodeID, members: [NodeID], quorate: Bool) {
        let previous = hosts[node]!.lastMembers
        hosts[node]!.lastMembers = members
        let change = CorosyncEvent.membership(members: members, joined: members.filter { !previous.contains($0) },
                                              left: previous.filter { !members.contains($0) }, agentOnly: [])
        let lag = scenario.timing.quorumLagMs
        if lag > 0, Int.random(in: 0...1, using: &rng) == 0 {
            handle(node, .corosync(change))
            queue.push(.quorumNotice(node, incarnation: hosts[node]!.incarnation, quorate: quorate, members: members),
                       at: now + Int64.random(in: 1...lag, using: &rng))
        } else {
            handle(node, .corosync(.quorum(quorate: quorate, members: members)))
            handle(node, .corosync(change))
        }
    }

    // MARK: hypervisors

    private func vmBooted(_ node: NodeID, _ inc: Int, _ vm: String, _ attempt: Int) {
        guard var h = hosts[node], h.alive, h.incarnation == inc, h.booting[vm] == attempt else { return }
        h.booting[vm] = nil
        h.running.insert(vm)
        hosts[node] = h
        checker.onRunning(self, vm, on: node)
        note("\(vm) started on \(name(node))")
        queue.push(.hypervisor(node, incarnation: inc, .running(vm)), at: now)
    }

    func scheduleMigrationStep() {
        guard !migrationStepScheduled else { return }
        migrationStepScheduled = true
        queue.push(.migrationStep, at: now + scenario.timing.migrationStepMs)
    }

    private func migrationStep() {
        migrationStepScheduled = false
        let reserve = Double(scenario.settings.migration.reserveMiBps)
        let outcomes = network.step(dt: scenario.timing.migrationStepMs, timing: scenario.timing,
                                    link: { Double(self.hosts[$0]!.config.linkMiBps) - reserve },
                                    reachable: { self.reachable($0, $1) })
        for outcome in outcomes {
            switch outcome {
            case let .progress(f):
                let inc = hosts[f.source]!.incarnation
                let p = MigrationProgress(totalMiB: Int(f.memoryMiB), remainingMiB: Int(f.roundLeftMiB + f.dirtiedMiB),
                                          rateMiBps: Int(f.rateMiBps), dirtyRateMiBps: Int(f.dirtyMiBps))
                queue.push(.hypervisor(f.source, incarnation: inc, .migrationProgress(job: f.job, p)), at: now)
            case let .completed(f):
                // Switchover: the guest leaves the source and runs on the destination at one instant.
                hosts[f.source]!.running.remove(f.vm)
                hosts[f.destination]!.running.insert(f.vm)
                checker.onRunning(self, f.vm, on: f.destination)
                if hosts[f.source]!.crashOnSwitchover {
                    note("\(f.vm) migrated \(name(f.source))→\(name(f.destination)); the source crashes at the switchover")
                    queue.push(.hypervisor(f.destination, incarnation: hosts[f.destination]!.incarnation, .running(f.vm)), at: now)
                    powerOff(f.source, why: "crash right after a switchover")
                    continue
                }
                report.completedMigrations += 1
                report.totalDowntimeMs += f.downtimeMs
                note("\(f.vm) migrated \(name(f.source))→\(name(f.destination)) (\(f.rounds) rounds, downtime \(Int(f.downtimeMs)) ms)")
                queue.push(.hypervisor(f.source, incarnation: hosts[f.source]!.incarnation,
                                       .migrationCompleted(job: f.job, vm: f.vm, downtimeMs: Int(f.downtimeMs))), at: now)
                queue.push(.hypervisor(f.destination, incarnation: hosts[f.destination]!.incarnation, .running(f.vm)), at: now)
            case let .failed(f, reason):
                report.failedMigrations += 1
                note("migration of \(f.vm) \(name(f.source))→\(name(f.destination)) failed: \(reason)")
                queue.push(.hypervisor(f.source, incarnation: hosts[f.source]!.incarnation,
                                       .migrationFailed(job: f.job, reason: reason)), at: now)
            }
        }
        if !network.isEmpty { scheduleMigrationStep() }
    }

    func reachable(_ a: NodeID, _ b: NodeID) -> Bool {
        guard let x = hosts[a], let y = hosts[b] else { return false }
        return x.alive && y.alive && !x.hung && !y.hung && x.partition == y.partition
    }

    private func leaseCheck(_ node: NodeID, _ inc: Int, _ until: Millis) {
        guard let h = hosts[node], h.alive, h.incarnation == inc, h.leaseUntil == until else { return }
        guard !h.running.isEmpty || !h.booting.isEmpty else { return }
        if h.hung || h.agentHung || h.resumedAt.map({ $0 > until - Millis(scenario.settings.recovery.leaseMs) }) ?? false {
            powerOff(node, why: "watchdog reset (hung during its lease)")
        } else if h.stopsFailed {
            powerOff(node, why: "watchdog reset (its VMs could not be stopped)")
        } else {
            violation("\(name(node)) still runs \(h.running.sorted().joined(separator: ",")) after its lease expired")
            powerOff(node, why: "watchdog reset")
        }
    }

    // MARK: faults and requests

    func perform(_ action: ScenarioEvent.Action) {
        let t = scenario.timing
        switch action {
        case let .crash(n):
            guard let id = id(named: n), hosts[id]!.alive else { return }
            powerOff(id, why: "crash")
        case let .powerOn(n):
            guard let id = id(named: n), !hosts[id]!.alive else { return }
            var h = hosts[id]!
            h.alive = true
            h.hung = false
            h.incarnation += 1
            let rebooted = makeHost(spec: h.core.spec, state: h.core.state, config: h.config)
            (h.shell, h.world, h.lastMembers) = (rebooted.shell, rebooted.world, [])
            hosts[id] = h
            note("power on \(n)")
            queue.push(.tick(id, incarnation: h.incarnation), at: now + t.tickMs)
            queue.push(.reconfigure, at: now + t.detectionMs)
        case let .partition(groups):
            for (i, group) in groups.enumerated() {
                for n in group { if let id = id(named: n) { hosts[id]!.partition = i + 1 } }
            }
            note("partition \(groups.map { $0.joined(separator: ",") }.joined(separator: " | "))")
            queue.push(.reconfigure, at: now + t.detectionMs)
        case .heal:
            for id in ids { hosts[id]!.partition = 0 }
            note("heal network")
            queue.push(.reconfigure, at: now + t.detectionMs)
        case let .hang(n):
            guard let id = id(named: n), hosts[id]!.alive, !hosts[id]!.hung else { return }
            hosts[id]!.hung = true
            note("hang \(n) (SIGSTOP)")
            let h = hosts[id]!
            queue.push(.leaseCheck(id, incarnation: h.incarnation, until: h.leaseUntil ?? now), at: max(now, h.leaseUntil ?? now))
            queue.push(.reconfigure, at: now + t.detectionMs)
        case let .resume(n):
            guard let id = id(named: n) else { return }
            if hosts[id]!.agentHung {
                hosts[id]!.agentHung = false
                hosts[id]!.resumedAt = now
                note("resume \(n)'s agent (SIGCONT)")
                handleBacklog(id)
                return
            }
            guard hosts[id]!.hung else { return }
            hosts[id]!.hung = false
            hosts[id]!.resumedAt = now
            note("resume \(n) (SIGCONT)")
            handleBacklog(id)
            queue.push(.reconfigure, at: now + t.detectionMs / 2)
        case let .hangAgent(n):
            guard let id = id(named: n), hosts[id]!.alive, !hosts[id]!.hung, !hosts[id]!.agentHung else { return }
            hosts[id]!.agentHung = true
            note("hang \(n)'s agent (SIGSTOP of corrald; Corosync and guests run on)")
            let h = hosts[id]!
            queue.push(.leaseCheck(id, incarnation: h.incarnation, until: h.leaseUntil ?? now), at: max(now, h.leaseUntil ?? now))
        case let .multicastFailures(n, percent, until):
            guard let id = id(named: n) else { return }
            hosts[id]!.multicastFailPercent = percent
            hosts[id]!.multicastFailUntil = until
            note("\(n): \(percent)% of multicasts fail until \(Double(until) / 1000)s")
        case let .stopFailures(n, until):
            guard let id = id(named: n) else { return }
            hosts[id]!.stopFailUntil = until
            note("\(n): VM stops fail until \(Double(until) / 1000)s")
        case let .watchdogFails(n):
            guard let id = id(named: n), hosts[id]!.alive else { return }
            note("\(n): the watchdog refuses to be armed")
            hosts[id]!.watchdogBroken = true
        case let .garble(n):
            guard let id = id(named: n) else { return }
            hosts[id]!.garbleNext = true
        case let .crashAfterSwitchover(n):
            guard let id = id(named: n) else { return }
            hosts[id]!.crashOnSwitchover = true
        case let .fenceAgentDelay(ms):
            fenceAgentMs = ms
            note("fence agents now take \(Double(ms) / 1000)s")
        case let .crashVM(vm):
            guard let host = ids.first(where: { hosts[$0]!.running.contains(vm) }) else { return }
            note("\(vm) crashes")
            queue.push(.vmHalted(host, incarnation: hosts[host]!.incarnation, vm: vm, crashed: true), at: now)
        case let .request(request, via):
            let target = via.flatMap(id(named:)) ?? ids.first { hosts[$0]!.alive && !hosts[$0]!.hung }
            guard let target else { return }
            note("request \(describe(request)) via \(name(target))")
            handle(target, .input(.request(id: UInt64(now), request, whatIf: false)))
        }
    }

    func powerOff(_ node: NodeID, why: String) {
        var h = hosts[node]!
        note("\(name(node)) off: \(why)\(h.running.isEmpty ? "" : " (VMs lost: \(h.running.sorted().joined(separator: ",")))")")
        h.alive = false
        h.hung = false
        h.running = []
        h.booting = [:]
        h.view = nil
        h.leaseUntil = nil
        h.incarnation += 1
        h.agentHung = false
        h.backlog = []
        h.crashOnSwitchover = false
        h.stopsFailed = false
        h.watchdogBroken = false
        hosts[node] = h
        for f in network.removeAll(touching: node) where f.source != node {
            report.failedMigrations += 1
            queue.push(.hypervisor(f.source, incarnation: hosts[f.source]!.incarnation,
                                   .migrationFailed(job: f.job, reason: "destination \(name(node)) went down")), at: now + scenario.timing.keepaliveMs)
        }
        queue.push(.reconfigure, at: now + scenario.timing.detectionMs)
    }

    private func describe(_ request: OperatorRequest) -> String {
        switch request {
        case let .addVM(spec, _): "add-vm \(spec.name)"
        case let .removeVM(vm): "remove-vm \(vm)"
        case let .startVM(vm): "start \(vm)"
        case let .stopVM(vm): "stop \(vm)"
        case let .moveVM(vm, to): "move \(vm) to \(to ?? "best node")"
        case let .drainNode(n): "drain \(n)"
        case let .pauseNode(n): "pause \(n)"
        case let .resumeNode(n, failback): "resume \(n)\(failback ? " --failback" : "")"
        case let .setConfig(key, value): "config \(key)=\(value)"
        case let .startPatchRun(patch): "patch run\(patch.order.isEmpty ? "" : " --order \(patch.order.joined(separator: ","))")"
        case let .abortPatchRun(force): "patch abort\(force ? " --force-recover" : "")"
        case let .addVolume(name, path, kind, _): "add-volume \(name) \(kind.rawValue) at \(path)"
        case let .removeVolume(name): "remove-volume \(name)"
        case let .setVolumeState(name, state, force): "volume \(name) \(state.rawValue)\(force ? " --force" : "")"
        case let .moveVolume(name, to): "move-volume \(name) to \(to)"
        case let .createDisk(volume, disk, size, _): "create-disk \(volume)/\(disk) \(size) MiB"
        case let .resizeDisk(volume, disk, size): "resize-disk \(volume)/\(disk) to \(size) MiB"
        case let .deleteDisk(volume, disk): "delete-disk \(volume)/\(disk)"
        }
    }

    // MARK: observation

    /// The state of the quorate coordinator, the cluster's authoritative view right now.
    var authority: CorralNode? {
        ids.lazy.compactMap { self.hosts[$0] }.first { $0.alive && !$0.hung && $0.core.isCoordinator }?.core
    }

    /// A node's storage starts a disk operation; its answer comes `diskOperationMs` later.
    func runDiskOperation(_ operation: DiskOperation, on node: NodeID) {
        guard let host = hosts[node] else { return }
        for (other, run) in diskOperationsRunning[operation.id] ?? [:] where other != node && run.until > now
            && hosts[other]?.alive == true && hosts[other]?.incarnation == run.incarnation {
            violation("disk operation \(operation.id) runs on \(name(other)) and \(name(node)) at once")
        }
        let until = now + scenario.timing.diskOperationMs
        diskOperationsRunning[operation.id, default: [:]][node] = (host.incarnation, until)
        note("\(name(node)) runs disk operation \(operation.id): \(operation.action.verb) \(operation.volume)/\(operation.disk)")
        queue.push(.shellEvent(node, incarnation: host.incarnation,
                               .input(.storage(.operationFinished(operation, .succeeded(SimulatedNode.volumeSpace))))), at: until)
    }

    private func recordStateChanges() {
        guard let core = authority else { return }
        for volume in core.state.sortedVolumes {
            let key = "volume:" + volume.name
            let value = "coordinator \(core.state.nodeName(volume.coordinator)), disks \(volume.disks.map(\.name)), \(volume.operations.count) queued"
            if timelineState[key] != value {
                timelineState[key] = value
                note("volume \(volume.name): \(value)")
            }
        }
        for node in core.state.sortedNodes {
            let key = "node:" + node.name
            let value = node.state.rawValue
            if timelineState[key] != value {
                timelineState[key] = value
                note("\(node.name) is \(value)\(node.drainFailures.isEmpty ? "" : ": " + node.drainFailures.joined(separator: "; "))")
                report.nodeStateTimes["\(node.name):\(value)"] = report.nodeStateTimes["\(node.name):\(value)"] ?? now
            }
        }
        if let run = core.state.patchRun { recordPatchRun(run, core.state) }
        for vm in core.state.vms.values.filter({ $0.state == .pending || $0.state == .failed }).sorted(by: { $0.name < $1.name }) {
            let key = "vm:" + vm.name
            let value = "\(vm.state.rawValue): \(vm.reason)"
            if timelineState[key] != value {
                timelineState[key] = value
                note("\(vm.name) \(value)")
            }
        }
        for key in timelineState.keys where key.hasPrefix("vm:") {
            let state = core.state.vms[String(key.dropFirst(3))]?.state
            if state != .pending && state != .failed { timelineState[key] = nil }
        }
    }

    /// Each step of each node in a patch run, and the run's end.
    private func recordPatchRun(_ run: PatchRun, _ state: ClusterState) {
        for progress in run.nodes where progress.step != .waiting {
            let key = "patch:\(run.id):\(progress.node)"
            let value = "\(progress.step.rawValue) (attempt \(progress.attempt))"
            guard timelineState[key] != value else { continue }
            timelineState[key] = value
            note("patch run \(run.id): \(state.nodeName(progress.node)) \(value)\(progress.reason.isEmpty ? "" : ": \(progress.reason)")")
        }
        let key = "patch:\(run.id)"
        if timelineState[key] != run.state.rawValue {
            timelineState[key] = run.state.rawValue
            if run.state != .running { note("patch run \(run.id) \(run.state.rawValue): \(run.outcome)") }
        }
    }

    private func finish() {
        checker.atEnd(self)
        report.endMs = now
        let vmNames = Set(scenario.vms.map(\.spec.name)).union(authority?.state.vms.keys.map { $0 } ?? [])
        report.placement = vmNames.sorted().map { vm in
            (vm, ids.filter { hosts[$0]!.running.contains(vm) }.map(name).joined(separator: ",").nonEmpty ?? "-")
        }
        report.nodeStates = ids.map { id in
            let h = hosts[id]!
            let state = authority?.state.nodes[id]?.state.rawValue ?? "?"
            return (name(id), h.alive ? state : "off (\(state))")
        }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
