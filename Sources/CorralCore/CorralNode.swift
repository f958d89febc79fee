/// One node's instance of the cluster logic: the replicated state plus what only this node
/// knows (its hypervisor, its lease, when it saw others leave). Every input is a value, every
/// output a list of directives; no clock, no I/O, no randomness, so the agent and the
/// simulator run exactly the same code.
public struct CorralNode: Sendable {
    public let id: NodeID
    public let spec: NodeSpec
    public private(set) var state: ClusterState
    public private(set) var members: [NodeID] = []
    public private(set) var quorate = false
    /// True from a membership change until the state sync of that membership completes.
    public private(set) var syncing = true
    public private(set) var now: Millis = 0
    /// Until when this node may run VMs; nil until its first heartbeat returns.
    public private(set) var leaseExpiry: Millis?
    /// VMs this node's hypervisor runs.
    public private(set) var localVMs: Set<String> = []

    /// The wire protocol this build speaks: a sync offer carries it, and a member that speaks
    /// another one stops every node of the membership from acting (mixed versions are refused
    /// by name instead of misread). 2: heartbeats carry their lease, the awaiting-destination
    /// VM state, sync rounds with a deadline.
    public static let protocolVersion = 2

    private var view = ""
    /// Sync rounds of the current membership: a delivered `resyncRequest` starts a new one at
    /// the same point of the agreed order on every member.
    private var syncRound = 0
    private var syncStartedAt: Millis = 0
    /// This round's deadline message, or the request for a new round, has been sent.
    private var syncDeadlineSent = false
    private var resyncRequested = false
    /// A delivered message could not be decoded: stop applying commands until a new round.
    private var missedDelivery = false
    /// Members that have sent something this build cannot read more than once in this
    /// membership: the node does not act until they leave. Values say why.
    public private(set) var unreadableMembers: [NodeID: String] = [:]
    private var undecodableFrom: [NodeID: Int] = [:]
    private var offers: [NodeID: SyncOffer] = [:]
    private var snapshotFrom: NodeID?
    private var nextSequence: UInt64 = 1
    /// This node's messages sent and not yet delivered back, with what they carried (re-sent
    /// or answered when the shell reports a multicast failure).
    private var outstanding: [UInt64: Envelope.Body] = [:]
    private var pendingReplies: [UInt64: UInt64] = [:]
    private var heartbeatSentAt: [UInt64: (at: Millis, leaseMs: Int)] = [:]
    private var lastHeartbeat: Millis?
    /// For each node, the latest local time its lease may end, from its heartbeats delivered
    /// here (delivery time + the lease it carried), or from a guest that reached it while lost.
    private var leaseEndSeen: [NodeID: Millis] = [:]
    /// Why this node's watchdog cannot be trusted, if it cannot: it then takes no VMs.
    public private(set) var watchdogProblem: String?
    private var drainAskedForWatchdog = false
    private var issuedStarts: Set<String> = []
    private var issuedStops: Set<String> = []
    private var issuedMigrations: [Int: Int] = [:]
    private var abortedMigrations: Set<Int> = []
    private var completedMigrations: [Int: Int] = [:]
    private var failedMigrations: [Int: String] = [:]
    private var preparedIncoming: Set<Int> = []
    private var sentFacts: Set<String> = []
    private var leftAt: [NodeID: Millis] = [:]
    /// When this node (as coordinator) first saw each crashed VM running again.
    private var runningSinceCrash: [String: Millis] = [:]
    /// This node's shell can run a fence agent against lost peers.
    private let hasFenceAgent: Bool
    /// Corosync's failure detection plus a second (every node reads the same corosync.conf,
    /// so every node computes the same floor).
    private let minimumLeaseMs: Int
    /// Start of this node's current unbroken run of quorate memberships.
    private var quorateSince: Millis?
    /// The fence agent attempt asked for each node being fenced (numbers never repeat).
    private var fenceAsked: [NodeID: (attempt: Int, episode: UInt64)] = [:]
    private var nextFenceAttempt = 1
    /// Nodes a fence agent confirmed off, with the fencing episode (`Node.fencingEpoch`) asked about.
    private var fenceConfirmed: [NodeID: UInt64] = [:]
    /// Nodes whose agent left while their Corosync stayed: fenced by lease, not by the agent.
    private var agentOnlyLeft: Set<NodeID> = []
    /// Peers Corosync's link heartbeat cannot reach (before any membership change says so).
    private var unreachable: Set<NodeID> = []
    /// Guests created paused here for a failover not yet allowed (`stageVM` sent, not consumed).
    public private(set) var staged: Set<String> = []
    /// Patch hooks this process asked to start ("run/phase/attempt"), those running, and the
    /// results not yet in the replicated state. A started hook this process did not start
    /// belongs to an earlier run of the agent: its answer is lost.
    private var patchHooksAsked: Set<String> = []
    private var patchHooksRunning: Set<String> = []
    private var patchHookResults: [String: PatchHookResult] = [:]
    /// The patch run step this node (as coordinator) is timing, and since when it sees it.
    private var patchStepSeen: (key: String, since: Millis)?
    /// The last forecast and what it was made from (state version and epoch, lost nodes):
    /// ticks change neither, so they reuse it instead of copying the state again.
    private var forecast: (epoch: UInt64, version: UInt64, lost: Set<NodeID>, placements: [String: NodeID])?
    /// Disk operations and volume probes this node runs or ran (`CorralNode+Volumes`).
    var storageWork = StorageWork()

    /// - `fenceAgent`: this node's shell has a fence agent command configured.
    /// - `leaseExpiry`: the lease a previous run of this node's agent left (from its watchdog
    ///   file), so that restarting the agent does not stop the VMs the lease still covers.
    /// - `minimumLeaseMs`: the floor under the lease setting, from Corosync's detection time.
    public init(spec: NodeSpec, state: ClusterState, fenceAgent: Bool = false, leaseExpiry: Millis? = nil,
                minimumLeaseMs: Int = 0) {
        self.id = spec.id
        self.spec = spec
        self.state = state
        self.hasFenceAgent = fenceAgent
        self.minimumLeaseMs = minimumLeaseMs
        self.leaseExpiry = leaseExpiry
    }

    public var isCoordinator: Bool { agreed && members.first == id }
    /// May this node change shared state and act on its VMs right now?
    public var canAct: Bool { agreed && !leaseEnding }
    /// Quorate, synced, applying every command, and understanding every member.
    private var agreed: Bool { quorate && !syncing && !missedDelivery && unreadableMembers.isEmpty }
    /// How long a state sync round may wait for offers (or the winner's snapshot) before the
    /// members settle it with what they have: a member that stays silent (a hung agent whose
    /// Corosync still runs) must not hold the whole cluster without a coordinator.
    var syncDeadlineMs: Millis { Millis(max(1_000, 4 * state.settings.recovery.heartbeatMs)) }
    /// The lease is gone or within its guard: VMs here must be stopped, not started.
    var leaseEnding: Bool { leaseExpiry.map { $0 - leaseGuard <= now } ?? true }

    public mutating func step(_ input: Input, now: Millis) -> [Directive] {
        var out: [Directive] = []
        // Not run for a while (the agent was stopped or starved): quorate views may have come
        // and gone unseen, so no lease bound from before the gap can be trusted.
        if self.now > 0, now - self.now > 2 * Millis(state.settings.recovery.heartbeatMs), quorate {
            quorateSince = now
            out.append(.log("not run for \(now - self.now) ms; counting peers' leases afresh"))
        }
        self.now = max(self.now, now)
        switch input {
        case let .membership(members, quorate, agentOnly):
            onMembership(members.sorted(), quorate: quorate, &out)
            agentOnlyLeft.formUnion(agentOnly.filter { !members.contains($0) })
        case let .delivered(envelope): onDelivered(envelope, &out)
        case .tick: onTick(&out)
        case let .quorum(newQuorate): onQuorumChange(newQuorate, &out)
        case let .request(requestID, request, whatIf): onRequest(requestID, request, whatIf: whatIf, &out)
        case let .hypervisor(event): onHypervisor(event, &out)
        case let .fenceAgentResult(node, attempt, fenced):
            // Only the answer to the latest ask counts: one that arrives after the node came
            // back (or after it was asked about again) says nothing about its current failure.
            let asked = fenceAsked[node]
            let current = asked?.attempt == attempt && state.nodes[node]?.health == .fencing
            if fenced && current { fenceConfirmed[node] = asked!.episode }
            out.append(.log("fence agent for \(state.nodeName(node)): \(fenced ? "confirmed off" : "did not confirm")"
                            + (current ? "" : " (a late answer to an earlier fencing: ignored)")))
        case let .unreachable(nodes):
            unreachable = Set(nodes).subtracting([id])
            out.append(.log("Corosync's link heartbeat " + (unreachable.isEmpty ? "reaches every peer"
                : "cannot reach \(unreachable.sorted().map { state.nodeName($0) })")))
        case let .broadcastFailed(sequence, reason): onBroadcastFailed(sequence, reason, &out)
        case let .watchdogFailed(reason): onWatchdogFailed(reason, &out)
        case let .undecodable(from, reason): onUndecodable(from, reason, &out)
        case let .patchHookFinished(run, phase, attempt, result):
            let key = "\(run)/\(phase.rawValue)/\(attempt)"
            patchHooksRunning.remove(key)
            patchHookResults[key] = result
            out.append(.log("patch run \(run): \(phase.rawValue) hook (attempt \(attempt)) exited \(result.status) after \(result.durationMs) ms"))
        case let .storage(event): onStorage(event, &out)
        }
        if canAct && !input.isHeartbeat {
            drainIfWatchdogFailed(&out)
            askFenceAgent(&out)
            reconcile(&out)
            runOwnPatchHook(&out)
            runStorageWork(&out)
            coordinate(&out)
        } else if !input.isHeartbeat {
            abortDoomedMigrations(&out)
        }
        if !input.isHeartbeat { stageFailovers(&out) }
        selfFenceIfNeeded(&out)
        return out
    }

    // MARK: membership and state sync

    private mutating func onMembership(_ newMembers: [NodeID], quorate newQuorate: Bool, _ out: inout [Directive]) {
        for node in members where !newMembers.contains(node) { leftAt[node] = now }
        for node in newMembers {
            // A node that is back must be fenced afresh if it fails again.
            leftAt[node] = nil
            fenceAsked[node] = nil
            fenceConfirmed[node] = nil
            agentOnlyLeft.remove(node)
        }
        if !newQuorate { quorateSince = nil } else if quorateSince == nil { quorateSince = now }
        members = newMembers
        quorate = newQuorate
        outstanding = [:]
        sentFacts = []
        heartbeatSentAt = [:]
        unreadableMembers = [:]
        undecodableFrom = [:]
        for (_, requestID) in pendingReplies.sorted(by: { $0.key < $1.key }) {
            out.append(.reply(id: requestID, .refused("membership changed before the request was applied; retry")))
        }
        pendingReplies = [:]
        out.append(.log("membership \(newMembers.map { state.nodeName($0) }) quorate=\(newQuorate)"))
        syncRound = 0
        startSyncRound(&out)
    }

    /// votequorum changed its verdict for the same membership. Losing quorum stops acting at
    /// once. Gaining it asks for a new sync round: this membership's sync may have finished
    /// without quorum (no epoch, no membership folded in), and a round must start at the same
    /// point of the agreed order on every member, never on one alone.
    private mutating func onQuorumChange(_ newQuorate: Bool, _ out: inout [Directive]) {
        guard newQuorate != quorate else { return }
        quorate = newQuorate
        out.append(.log("votequorum: quorate=\(newQuorate) for the same membership"))
        guard newQuorate else { quorateSince = nil; return }
        quorateSince = now
        // Until the new round starts, the current one must not finish as a quorate one here
        // (on the other members it may not), and nothing is applied.
        syncing = true
        missedDelivery = true
        resyncRequested = true
        send(.resyncRequest(view: view), &out)
    }

    /// Starts a state sync round of the current membership: stop applying commands, offer
    /// (epoch, version, digest), and let the offers (or the deadline) pick the state.
    private mutating func startSyncRound(_ out: inout [Directive]) {
        syncing = true
        // Facts delivered during the round are not applied: report them again afterwards.
        sentFacts = []
        missedDelivery = false
        view = StateDigest.of(members) + "#\(syncRound)"
        offers = [:]
        snapshotFrom = nil
        syncStartedAt = now
        syncDeadlineSent = false
        resyncRequested = false
        send(.syncOffer(SyncOffer(view: view, epoch: state.epoch, version: state.version, digest: state.digest,
                                  protocolVersion: Self.protocolVersion, expectedVotes: state.settings.expectedVotes)), &out)
    }

    private mutating func onSyncOffer(_ offer: SyncOffer, from origin: NodeID, _ out: inout [Directive]) {
        guard syncing, snapshotFrom == nil, offer.view == view, members.contains(origin) else { return }
        guard offer.protocolVersion == Self.protocolVersion else {
            unreadableMembers[origin] = "speaks protocol \(offer.protocolVersion), this node \(Self.protocolVersion)"
            out.append(.log("\(state.nodeName(origin)) speaks Corral protocol \(offer.protocolVersion), this node \(Self.protocolVersion): "
                            + "no node acts until every member runs the same version"))
            return
        }
        offers[origin] = offer
        guard members.allSatisfy({ offers[$0] != nil }) else { return }
        let winner = syncWinner(among: members)
        if members.allSatisfy({ offers[$0]!.digest == offers[winner]!.digest }) {
            finishSync(&out)
        } else {
            snapshotFrom = winner
            if winner == id { send(.snapshot(state, view: view), &out) }
        }
    }

    /// The most recent quorate partition wins: highest epoch, then the longest history, ties
    /// to the lowest node id.
    private func syncWinner(among offered: [NodeID]) -> NodeID {
        offered.max { (offers[$0]!.epoch, offers[$0]!.version, $1) < (offers[$1]!.epoch, offers[$1]!.version, $0) }!
    }

    /// The round's deadline, delivered at the same point of the agreed order everywhere: the
    /// offers delivered so far decide, and the winner always sends its state, so a member whose
    /// offer came too late (it was frozen) adopts it when it runs again.
    private mutating func onSyncDeadline(view deadlineView: String, _ out: inout [Directive]) {
        guard syncing, snapshotFrom == nil, deadlineView == view else { return }
        let offered = members.filter { offers[$0] != nil }
        guard !offered.isEmpty else { return }
        let silent = members.filter { offers[$0] == nil }
        // A silent member may hold the newest state (the last quorate round finished on a
        // majority, maybe not on the members that offered): settle only with offers from a
        // majority of the cluster's votes, which must include a member of that round. The
        // threshold comes from the offers themselves, so every member decides the same.
        let votes = offered.map { offers[$0]!.expectedVotes }.max() ?? 0
        guard offered.count * 2 > votes else {
            out.append(.log("state sync deadline: offers from \(offered.map { state.nodeName($0) }) only, not a majority of \(votes) votes; "
                            + "waiting for \(silent.map { state.nodeName($0) })"))
            return
        }
        out.append(.log("state sync deadline: no offer from \(silent.map { state.nodeName($0) }); settling with \(offered.map { state.nodeName($0) })"))
        snapshotFrom = syncWinner(among: offered)
        if snapshotFrom == id { send(.snapshot(state, view: view), &out) }
    }

    /// A member asks for a new sync round (it missed a delivery, or a round did not settle):
    /// every member starts it at this point of the agreed order.
    private mutating func onResyncRequest(view requestView: String, from origin: NodeID, _ out: inout [Directive]) {
        // Quorate or not, every member starts the round here: rounds must stay in step.
        guard requestView == view, members.contains(origin) else { return }
        out.append(.log("\(state.nodeName(origin)) asked for a new state sync round"))
        syncRound += 1
        startSyncRound(&out)
    }

    private mutating func onSnapshot(_ snapshot: ClusterState, view snapshotView: String, from origin: NodeID, _ out: inout [Directive]) {
        guard syncing, snapshotView == view, origin == snapshotFrom else { return }
        if snapshot.digest != state.digest {
            out.append(.log("adopting state epoch \(snapshot.epoch) from \(snapshot.nodeName(origin))"))
            state = snapshot
        }
        finishSync(&out)
    }

    private mutating func finishSync(_ out: inout [Directive]) {
        syncing = false
        snapshotFrom = nil
        guard quorate, !missedDelivery else { return }
        state.epoch += 1
        state.applyMembership(members)
        // A lost node may have renewed its lease in another quorate partition while we were in
        // none; count its lease from when our own unbroken run of quorate views began, if later.
        for node in state.sortedNodes where node.health == .fencing {
            leftAt[node.id] = max(leftAt[node.id] ?? now, quorateSince ?? now)
        }
        out.append(.stateChanged)
        if state.nodes[id].map({ $0.name != spec.name || $0.capacity != spec.capacity
            || (spec.linkMiBps > 0 && ($0.linkMiBps != spec.linkMiBps || !$0.linkConfigured)) }) ?? true {
            send(.command(.registerNode(spec)), &out)
        }
        sendHeartbeat(&out)
    }

    // MARK: delivery

    private mutating func onDelivered(_ envelope: Envelope, _ out: inout [Directive]) {
        if envelope.origin == id { outstanding.removeValue(forKey: envelope.sequence) }
        undecodableFrom[envelope.origin] = nil
        switch envelope.body {
        case let .syncOffer(offer): onSyncOffer(offer, from: envelope.origin, &out)
        case let .snapshot(snapshot, snapshotView): onSnapshot(snapshot, view: snapshotView, from: envelope.origin, &out)
        case let .syncDeadline(deadlineView): onSyncDeadline(view: deadlineView, &out)
        case let .resyncRequest(requestView): onResyncRequest(view: requestView, from: envelope.origin, &out)
        case let .command(command):
            if case let .heartbeat(node, sequence, granted) = command, quorate {
                // Heartbeats count during a state sync too: a second fault inside one detection
                // time must not leave every node without a renewal until its lease runs out.
                leaseEndSeen[node] = max(leaseEndSeen[node] ?? .min, now + Millis(granted))
                if node == id, let sent = heartbeatSentAt.removeValue(forKey: sequence) {
                    leaseExpiry = max(leaseExpiry ?? .min, sent.at + Millis(sent.leaseMs))
                    out.append(.renewLease(until: leaseExpiry!))
                }
            }
            let reply = envelope.origin == id ? pendingReplies.removeValue(forKey: envelope.sequence) : nil
            guard quorate, !syncing, !missedDelivery else {
                if let reply { out.append(.reply(id: reply, .refused(quorate ? "state sync in progress; retry" : "no quorum"))) }
                return
            }
            noteArrivalOnLostNode(command)
            let versionBefore = state.version
            let outcome = state.apply(command)
            // An applied fact may become true again later (a second crash): allow reporting it anew.
            if envelope.origin == id, outcome == .applied, !sentFacts.isEmpty { sentFacts.remove("\(command)") }
            if case .heartbeat = command { if state.version != versionBefore { out.append(.stateChanged) } } else { out.append(.stateChanged) }
            if case let .refused(why) = outcome {
                if let reply { out.append(.reply(id: reply, .refused(why))) } else if envelope.origin == id {
                    out.append(.log("refused \(RequestPlanner.describe(command, state)): \(why)"))
                }
            } else if let reply {
                out.append(.reply(id: reply, .done(RequestPlanner.describe(command, state))))
            }
        }
    }

    /// A guest that completes its migration to a node outside the membership reached it with
    /// its lease perhaps already over (its self-fence stops it at once, or its watchdog already
    /// reset it): that node is fenced only a whole lease after this instant.
    private mutating func noteArrivalOnLostNode(_ command: Command) {
        guard case let .migrationFinished(job, _) = command, let destination = state.jobs[job]?.destination,
              state.jobs[job]?.state == .running, !members.contains(destination) else { return }
        leaseEndSeen[destination] = max(leaseEndSeen[destination] ?? .min, now + Millis(longestLease(of: destination)))
    }

    mutating func send(_ body: Envelope.Body, _ out: inout [Directive]) {
        let envelope = Envelope(origin: id, sequence: nextSequence, body: body)
        outstanding[nextSequence] = body
        nextSequence += 1
        out.append(.broadcast(envelope))
    }

    // MARK: time, lease and self-fencing

    private mutating func onTick(_ out: inout [Directive]) {
        if quorate && lastHeartbeat.map({ now - $0 >= Millis(state.settings.recovery.heartbeatMs) }) ?? true {
            sendHeartbeat(&out)
        }
        guard quorate, syncing else { return }
        let waited = now - syncStartedAt
        if waited >= syncDeadlineMs, snapshotFrom == nil, !syncDeadlineSent {
            syncDeadlineSent = true
            send(.syncDeadline(view: view), &out)
        } else if waited >= 2 * syncDeadlineMs, !resyncRequested {
            // The chosen winner's state never came (it froze after winning): start over.
            resyncRequested = true
            send(.resyncRequest(view: view), &out)
        }
    }

    /// As coordinator, asks the fence agent about every node being fenced once its grace is
    /// over: checked on every step, so the agent runs the moment the state sync marks a node.
    private mutating func askFenceAgent(_ out: inout [Directive]) {
        guard isCoordinator, state.settings.recovery.fenceAgent || hasFenceAgent else { return }
        let grace = Millis(state.settings.recovery.fenceGraceMs)
        for node in state.sortedNodes where node.health == .fencing && fenceAsked[node.id]?.episode != node.fencingEpoch
            && !agentOnlyLeft.contains(node.id) && now >= (leftAt[node.id] ?? now) + grace {
            fenceAsked[node.id] = (nextFenceAttempt, node.fencingEpoch)
            out.append(.runFenceAgent(node.id, name: node.name, attempt: nextFenceAttempt))
            nextFenceAttempt += 1
        }
    }

    private mutating func sendHeartbeat(_ out: inout [Directive]) {
        lastHeartbeat = now
        heartbeatSentAt[nextSequence] = (now, leaseMs)
        send(.command(.heartbeat(id, sequence: nextSequence, leaseMs: leaseMs)), &out)
    }

    /// The longest lease `node` may hold as far as this node can tell: what its heartbeats
    /// carried (recorded in the state), the setting and this node's own floor.
    func longestLease(of node: NodeID) -> Int {
        max(leaseMs, state.nodes[node]?.longestLeaseMs ?? 0)
    }

    /// Stop margin before the lease runs out: the VMs must be off before anyone may restart them.
    private var leaseGuard: Millis { Millis(min(500, leaseMs / 4)) }

    /// The lease in force: the setting, raised to `minimumLeaseMs` so that no healthy node's
    /// lease runs out while Corosync is still detecting another node's failure (nothing is
    /// delivered then: token + consensus, 6.5 s for 5 nodes with `token: 1000`).
    public var leaseMs: Int { max(state.settings.recovery.leaseMs, minimumLeaseMs) }

    /// With the lease about to run out (no quorum, or Corosync silent), stop every VM here: the
    /// quorate side restarts them once the lease is over. Until then a node that lost quorum
    /// keeps its VMs, so a partition that heals within the lease costs nothing.
    /// Guests the cluster does not know (not Corral's) are left alone.
    private mutating func selfFenceIfNeeded(_ out: inout [Directive]) {
        guard leaseEnding else { return }
        for vm in localVMs.sorted() where !issuedStops.contains(vm) && state.vms[vm] != nil {
            issuedStops.insert(vm)
            out.append(.stopVM(vm, reason: quorate ? "self-fence: lease ending without a heartbeat" : "self-fence: no quorum"))
        }
        for (job, _) in issuedMigrations.sorted(by: { $0.key < $1.key }) {
            abortOnce(job, vm: state.jobs[job]?.vm ?? "", &out)
        }
    }

    // MARK: shell failures

    /// A message that never left: what must arrive is sent again (sync messages, heartbeats
    /// and facts on the next pass), an operator request is refused, and a coordinator
    /// decision is simply planned again (nothing is outstanding any more).
    private mutating func onBroadcastFailed(_ sequence: UInt64, _ reason: String, _ out: inout [Directive]) {
        guard let body = outstanding.removeValue(forKey: sequence) else { return }
        out.append(.log("could not multicast message \(sequence): \(reason)"))
        if let requestID = pendingReplies.removeValue(forKey: sequence) {
            out.append(.reply(id: requestID, .refused("could not send the request to the cluster (\(reason)); retry")))
        }
        switch body {
        case let .syncOffer(offer) where syncing && offer.view == view: send(body, &out)
        case let .snapshot(_, snapshotView) where syncing && snapshotView == view: send(.snapshot(state, view: view), &out)
        case let .syncDeadline(deadlineView) where deadlineView == view: syncDeadlineSent = false
        case let .resyncRequest(requestView) where requestView == view:
            resyncRequested = false
            if missedDelivery { send(body, &out) }
        case let .command(.heartbeat(_, sent, _)):
            heartbeatSentAt[sent] = nil
            lastHeartbeat = nil
        case let .command(command):
            sentFacts.remove("\(command)")
        default:
            break
        }
    }

    /// Without a working watchdog a hung agent would leave its guests running past its lease,
    /// so this node takes no VMs: it drains itself (live; nothing is stopped for it) and stays
    /// drained until an operator resumes it.
    private mutating func onWatchdogFailed(_ reason: String, _ out: inout [Directive]) {
        if watchdogProblem == nil { out.append(.log("the watchdog cannot be trusted (\(reason)): draining this node")) }
        watchdogProblem = reason
    }

    private mutating func drainIfWatchdogFailed(_ out: inout [Directive]) {
        guard watchdogProblem != nil, !drainAskedForWatchdog, let node = state.nodes[id] else { return }
        guard node.admin == .active || node.admin == .paused else { return }
        drainAskedForWatchdog = true
        send(.command(.drainNode(id)), &out)
    }

    /// A delivery this node cannot read may be a command every other member applied: stop
    /// applying commands and ask for a new sync round, which replaces this node's state with
    /// the winner's. A member two of whose messages in a row cannot be read (none readable in
    /// between) speaks something else (another version): no node acts until it leaves.
    private mutating func onUndecodable(_ from: NodeID, _ reason: String, _ out: inout [Directive]) {
        out.append(.log("could not read a message from \(state.nodeName(from)): \(reason)"))
        guard quorate, unreadableMembers[from] == nil else { return }
        undecodableFrom[from, default: 0] += 1
        if undecodableFrom[from]! >= 2, members.contains(from) {
            unreadableMembers[from] = reason
            return out.append(.log("\(state.nodeName(from)) keeps sending what this node cannot read (another Corral version?): "
                                   + "no node acts until every member runs the same version"))
        }
        missedDelivery = true
        guard !resyncRequested else { return }
        resyncRequested = true
        send(.resyncRequest(view: view), &out)
    }

    // MARK: requests

    private mutating func onRequest(_ requestID: UInt64, _ request: OperatorRequest, whatIf: Bool, _ out: inout [Directive]) {
        guard quorate else { return out.append(.reply(id: requestID, .refused("no quorum: this node's partition has \(members.count) of \(state.settings.expectedVotes) votes"))) }
        guard !syncing else { return out.append(.reply(id: requestID, .refused("state sync in progress after a membership change; retry"))) }
        if whatIf {
            switch RequestPlanner.whatIf(request, in: state) {
            case let .success(lines): out.append(.reply(id: requestID, .plan(lines)))
            case let .failure(refusal): out.append(.reply(id: requestID, .refused(refusal.message)))
            }
            return
        }
        switch RequestPlanner.command(for: request, in: state) {
        case let .failure(refusal): out.append(.reply(id: requestID, .refused(refusal.message)))
        case let .success(command):
            pendingReplies[nextSequence] = requestID
            send(.command(command), &out)
        }
    }

    // MARK: hypervisor

    private mutating func onHypervisor(_ event: HypervisorEvent, _ out: inout [Directive]) {
        switch event {
        case let .running(vm):
            localVMs.insert(vm)
            issuedStarts.remove(vm)
            staged.remove(vm)
        case let .stopped(vm, crashed):
            localVMs.remove(vm)
            issuedStops.remove(vm)
            issuedStarts.remove(vm)
            staged.remove(vm)
            if crashed { out.append(.log("VM \(vm) crashed")) }
        case let .startFailed(vm, reason):
            issuedStarts.remove(vm)
            staged.remove(vm)
            out.append(.log("VM \(vm) failed to start: \(reason)"))
            // Counted as a crash here: the restart policy then decides where (or whether) it runs.
            if canAct, state.vms[vm]?.node == id { report(.vmStopped(vm: vm, on: id, crashed: true), &out) }
        case let .inventory(vms):
            localVMs = Set(vms)
        case let .migrationProgress(job, progress):
            if canAct { send(.command(.migrationProgress(job: job, progress)), &out) }
        case let .migrationCompleted(job, vm, downtime):
            localVMs.remove(vm)
            issuedMigrations[job] = nil
            completedMigrations[job] = downtime
        case let .migrationFailed(job, reason):
            issuedMigrations[job] = nil
            failedMigrations[job] = reason
        case let .migrationOverhead(ms):
            if canAct { send(.command(.migrationOverheadMeasured(ms: ms)), &out) }
        case let .stopFailed(vm, reason):
            // Asked again on the next step (the self-fence and the reconcile pass re-issue it).
            issuedStops.remove(vm)
            out.append(.log("stopping \(vm) failed: \(reason); retrying"))
        case let .queryFailed(vm, reason):
            out.append(.log("could not ask the hypervisor about \(vm): \(reason); not treated as a crash"))
        }
    }

    /// Makes this node's hypervisor match the replicated state, and reports what only it can see.
    private mutating func reconcile(_ out: inout [Directive]) {
        let relevant = state.vms.values.filter { $0.node == id || localVMs.contains($0.name) }.sorted { $0.name < $1.name }
        for vm in relevant {
            let here = localVMs.contains(vm.name)
            guard vm.node == id else {
                let incoming = state.activeJob(for: vm.name).map { $0.state == .running && $0.destination == id } ?? false
                if incoming { continue }
                if vm.node == nil && (vm.state == .stopped || vm.state == .pending) {
                    report(.vmStarted(vm: vm.name, on: id, leaseTokens: []), &out)
                } else if !issuedStops.contains(vm.name) {
                    issuedStops.insert(vm.name)
                    out.append(.stopVM(vm.name, reason: "the cluster runs \(vm.name) on \(state.nodeName(vm.node))"))
                }
                continue
            }
            let tokens = vm.spec.disks.map { state.leases[$0]?.token ?? 0 }
            switch vm.state {
            case .starting where here:
                report(.vmStarted(vm: vm.name, on: id, leaseTokens: tokens), &out)
            case .starting where !issuedStarts.contains(vm.name):
                guard vm.spec.disks.allSatisfy({ state.leases[$0]?.holders.contains(id) ?? false }) else {
                    out.append(.log("not starting \(vm.name): this node does not hold all its disk leases"))
                    continue
                }
                issuedStarts.insert(vm.name)
                out.append(.startVM(vm.spec, leaseTokens: tokens))
            case .running where !here, .migrating where !here:
                if let job = state.activeJob(for: vm.name), let downtime = completedMigrations[job.id] {
                    report(.migrationFinished(job: job.id, downtimeMs: downtime), &out)
                } else if !issuedStarts.contains(vm.name) {
                    report(.vmStopped(vm: vm.name, on: id, crashed: true), &out)
                }
            case .stopping where here:
                if !issuedStops.contains(vm.name) {
                    issuedStops.insert(vm.name)
                    out.append(.stopVM(vm.name, reason: "operator stop"))
                }
            case .stopping:
                report(.vmStopped(vm: vm.name, on: id, crashed: false), &out)
            case .awaitingDestination:
                // The source was fenced mid-migration; only this node's hypervisor knows
                // whether the guest switched over here (the source is off, so it cannot now).
                report(here ? .vmStarted(vm: vm.name, on: id, leaseTokens: [])
                            : .vmStopped(vm: vm.name, on: id, crashed: false), &out)
            default:
                break
            }
        }
        for job in state.jobs.values.filter({ $0.destination == id && $0.state == .running && !preparedIncoming.contains($0.id) }).sorted(by: { $0.id < $1.id }) {
            preparedIncoming.insert(job.id)
            if let vm = state.vms[job.vm] { out.append(.prepareIncoming(job, vm.spec)) }
        }
        for job in state.jobs.values.filter({ $0.source == id && ($0.state == .running || issuedMigrations[$0.id] != nil) }).sorted(by: { $0.id < $1.id }) {
            if job.state == .running, let reason = failedMigrations[job.id] {
                report(.migrationFailed(job: job.id, reason: reason), &out)
            } else if job.state == .running, let why = destinationLost(job.destination), completedMigrations[job.id] == nil {
                // The destination left, or went silent for half a lease: stop the migration so
                // that the guest cannot switch over to a node whose lease may be running out.
                // Whether it stopped in time or switched over first, the hypervisor's answer is
                // what gets reported.
                if issuedMigrations[job.id] == nil {
                    report(.migrationFailed(job: job.id, reason: why), &out)
                } else {
                    abortOnce(job.id, vm: job.vm, &out)
                }
            } else if job.state == .running, let vm = state.vms[job.vm], completedMigrations[job.id] == nil {
                if let bw = issuedMigrations[job.id] {
                    if bw != job.bandwidthMiBps {
                        issuedMigrations[job.id] = job.bandwidthMiBps
                        out.append(.setMigrationBandwidth(job: job.id, vm: job.vm, MiBps: job.bandwidthMiBps))
                    }
                } else if !abortedMigrations.contains(job.id) {
                    issuedMigrations[job.id] = job.bandwidthMiBps
                    out.append(.migrateVM(job, vm.spec, destinationName: state.nodeName(job.destination)))
                }
            } else if job.state == .failed, issuedMigrations[job.id] != nil {
                abortOnce(job.id, vm: job.vm, &out)
            }
        }
        forgetSettledMigrations()
    }

    /// While this node cannot act (no quorum, or a sync under way), the migrations it sends
    /// still must not switch over to a destination that is about to stop its guests: without
    /// quorum every destination is (a member shares this minority, any other is lost), with
    /// quorum the lost ones are. Aborting only keeps the guest here, which is always safe.
    private mutating func abortDoomedMigrations(_ out: inout [Directive]) {
        for job in state.jobs.values.filter({ $0.source == id && $0.state == .running }).sorted(by: { $0.id < $1.id })
        where issuedMigrations[job.id] != nil && completedMigrations[job.id] == nil && !abortedMigrations.contains(job.id) {
            guard let why = quorate ? destinationLost(job.destination) : "no quorum here" else { continue }
            out.append(.log("aborting migration \(job.id) of \(job.vm) to \(state.nodeName(job.destination)): \(why)"))
            abortOnce(job.id, vm: job.vm, &out)
        }
    }

    /// Asks the hypervisor to abort a migration sent from here, once per job.
    private mutating func abortOnce(_ job: Int, vm: String, _ out: inout [Directive]) {
        guard abortedMigrations.insert(job).inserted else { return }
        out.append(.abortMigration(job: job, vm: vm))
    }

    /// Why a migration to `node` must not switch over, if it must not: it left the membership,
    /// or its lease, as the last heartbeat seen here carried it, ends within the stop guard
    /// plus the margin (its heartbeats stopped coming: it is about to stop every guest it has,
    /// an arriving one included, which it could not stop in time).
    private func destinationLost(_ node: NodeID) -> String? {
        if !members.contains(node) { return "\(state.nodeName(node)) left the membership" }
        if let end = leaseEndSeen[node], end - now < leaseGuard + Millis(state.settings.recovery.marginMs) {
            return "\(state.nodeName(node))'s lease is about to run out (no heartbeat from it)"
        }
        return nil
    }

    /// How long a quorate membership must have held before this node stages anything.
    public static let stagingSettleMs: Millis = 2_000

    /// Failover staging: while a node that holds VMs is being fenced, or already looks dead to
    /// Corosync's link heartbeat, the guests the recovery would start here are created paused,
    /// so that once the node is fenced their start is only a resume (a libvirt start costs about
    /// 0.35 s of CPU, mostly QEMU's CPU model probing). A staged guest has never run and runs
    /// only when the replicated state starts it here (`startVM`), which still needs the fencing.
    /// Staged guests that the forecast no longer sends here are discarded.
    private mutating func stageFailovers(_ out: inout [Directive]) {
        // Mid-sync nothing is known yet: keep what is staged (the new membership is the moment
        // the staging pays off) until the state is agreed again.
        guard !(quorate && syncing) else { return }
        var wanted: [String: VMSpec] = [:]
        // Only a side that stays a majority without the lost nodes will run their guests.
        let staying = members.filter { !unreachable.contains($0) }.count
        if canAct, watchdogProblem == nil, staying * 2 > state.settings.expectedVotes {
            let lost = Set(state.sortedNodes.filter { node in
                node.id != id && (node.health == .fencing || (node.health == .up && unreachable.contains(node.id)))
            }.map(\.id))
            // Guests with disks are not staged: QEMU locks its images when it opens them, so a
            // staged copy would block the real start of the guest anywhere else until it is
            // discarded (found by Deploy/chaos), and the lost node's own copy, if it still
            // runs, holds those locks anyway.
            if forecast.map({ $0.epoch != state.epoch || $0.version != state.version || $0.lost != lost }) ?? true {
                forecast = (state.epoch, state.version, lost, FailoverForecast.placements(state, losing: lost))
            }
            for (vm, node) in forecast!.placements where node == id {
                if let spec = state.vms[vm]?.spec, spec.disks.isEmpty { wanted[vm] = spec }
            }
        }
        for vm in staged.sorted() where wanted[vm] == nil {
            // Fenced and about to be placed, or placed here for real (the start resumes it).
            if canAct, let lost = state.vms[vm],
               (lost.node == nil && lost.state == .pending) || (lost.node == id && lost.state == .starting) { continue }
            staged.remove(vm)
            out.append(.unstageVM(vm))
        }
        // A cluster that has just formed (nodes restarting, links coming up one by one) makes
        // the forecast flap: stage only from a membership that has held for a while.
        guard let since = quorateSince, now - since >= Self.stagingSettleMs else { return }
        for (vm, spec) in wanted.sorted(by: { $0.key < $1.key }) where !staged.contains(vm) && !localVMs.contains(vm) {
            staged.insert(vm)
            out.append(.log("staging \(vm) paused here: \(state.nodeName(state.vms[vm]?.node)) is lost and not fenced yet"))
            out.append(.stageVM(spec))
        }
    }

    /// Forgets local migration outcomes once the replicated state has recorded them.
    private mutating func forgetSettledMigrations() {
        let jobs = state.jobs
        let issued = issuedMigrations
        func running(_ job: Int) -> Bool { jobs[job]?.state == .running }
        completedMigrations = completedMigrations.filter { running($0.key) }
        failedMigrations = failedMigrations.filter { running($0.key) }
        abortedMigrations = abortedMigrations.filter { running($0) || issued[$0] != nil }
        preparedIncoming = preparedIncoming.filter { running($0) }
    }

    /// Multicasts a fact once per membership (a lost one is re-sent after the next change).
    mutating func report(_ fact: Command, _ out: inout [Directive]) {
        let key = "\(fact)"
        guard !sentFacts.contains(key) else { return }
        sentFacts.insert(key)
        send(.command(fact), &out)
    }

    // MARK: coordination

    private mutating func coordinate(_ out: inout [Directive]) {
        guard isCoordinator, outstanding.isEmpty else { return }
        // Before our unbroken quorate run began, a partition we were not in may have renewed
        // any node's lease, with the longest lease it was ever granted.
        var leaseEnds: [NodeID: Millis] = [:]
        for node in state.nodes.keys {
            leaseEnds[node] = max(leaseEndSeen[node] ?? .min, (quorateSince ?? now) + Millis(longestLease(of: node)))
        }
        // Only confirmations about the node's current fencing episode count.
        let confirmed = Set(fenceConfirmed.filter { state.nodes[$0.key]?.fencingEpoch == $0.value }.keys)
        let context = Coordinator.Context(now: now, leaseEnds: leaseEnds, fenceConfirmed: confirmed,
                                          members: members, stableVMs: stableAfterCrashes(), stepElapsedMs: patchStepElapsed())
        for command in Coordinator.plan(state, context) { send(.command(command), &out) }
    }
}

extension CorralNode {
    /// Crashed VMs that have now run a whole crash window (as seen by this coordinator; a new
    /// coordinator starts counting afresh, which only delays the forgiving).
    fileprivate mutating func stableAfterCrashes() -> [String] {
        let window = Millis(state.settings.recovery.crashWindowMs)
        var stable: [String] = []
        var seen: [String: Millis] = [:]
        for vm in state.sortedVMs where vm.crashCount > 0 && vm.state == .running {
            let since = runningSinceCrash[vm.name] ?? now
            seen[vm.name] = since
            if now - since >= window { stable.append(vm.name) }
        }
        runningSinceCrash = seen
        return stable
    }
}

extension CorralNode {
    /// How long this coordinator has seen the patch run's current step.
    fileprivate mutating func patchStepElapsed() -> Millis {
        guard let run = state.patchRun, run.state == .running, let progress = run.current else {
            patchStepSeen = nil
            return 0
        }
        let key = "\(run.id)/\(progress.node)/\(progress.step.rawValue)/\(progress.attempt)"
        if patchStepSeen?.key != key { patchStepSeen = (key, now) }
        return now - patchStepSeen!.since
    }

    /// When the patch run's current step is a hook on this node: announce its start through
    /// the agreed order, run it once that start is applied, and report its result. A hook
    /// recorded as started that this agent never asked for ran under an earlier agent (which
    /// died, the node not rebooting): its answer is lost, reported as status -1.
    fileprivate mutating func runOwnPatchHook(_ out: inout [Directive]) {
        guard let run = state.patchRun, run.state == .running, let progress = run.current, progress.node == id,
              let phase = progress.step.phase, progress.currentResult == nil else { return }
        let key = "\(run.id)/\(phase.rawValue)/\(progress.attempt)"
        if let result = patchHookResults[key] {
            return report(.patchHookFinished(run: run.id, node: id, phase: phase, attempt: progress.attempt, result), &out)
        }
        guard progress.hookStarted else {
            patchHooksAsked.insert(key)
            return report(.patchHookStarted(run: run.id, node: id, phase: phase, attempt: progress.attempt), &out)
        }
        guard !patchHooksRunning.contains(key) else { return }
        guard patchHooksAsked.contains(key) else {
            let lost = PatchHookResult(status: -1, outputTail: "the hook's answer was lost: corrald restarted while it ran", durationMs: 0)
            return report(.patchHookFinished(run: run.id, node: id, phase: phase, attempt: progress.attempt, lost), &out)
        }
        let command: String?
        switch phase {
        case .pre: command = run.options.pre
        case .hook: command = run.options.hook
        case .post: command = run.options.post
        }
        patchHooksRunning.insert(key)
        out.append(.runPatchHook(run: run.id, phase: phase, attempt: progress.attempt, command: command ?? "true",
                                 timeoutMs: run.options.rebootTimeoutMs))
    }
}

extension Input {
    /// A heartbeat changes nothing shared; skipping the reconcile pass for it keeps steps cheap.
    var isHeartbeat: Bool {
        if case let .delivered(e) = self, case .command(.heartbeat) = e.body { return true }
        return false
    }
}
