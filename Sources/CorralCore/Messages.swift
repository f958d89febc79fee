/// One multicast message between agents: who sent it, their sequence number, and the body.
public struct Envelope: Codable, Sendable, Equatable {
    public var origin: NodeID
    public var sequence: UInt64
    public var body: Body

    public enum Body: Codable, Sendable, Equatable {
        case command(Command)
        /// A member's (epoch, digest) at the start of a state sync.
        case syncOffer(SyncOffer)
        /// The sync winner's state, sent when some member's digest differs.
        case snapshot(ClusterState, view: String)
        /// A sync round has waited long enough: the offers delivered so far decide it.
        case syncDeadline(view: String)
        /// Start a new sync round of this membership (a member missed a delivery, or the
        /// round's winner never sent its state).
        case resyncRequest(view: String)
    }

    public init(origin: NodeID, sequence: UInt64, body: Body) {
        self.origin = origin
        self.sequence = sequence
        self.body = body
    }
}

public struct SyncOffer: Codable, Sendable, Equatable {
    /// Fingerprint of the membership the offer was made in; offers of other views are ignored.
    public var view: String
    public var epoch: UInt64
    public var version: UInt64
    public var digest: String
    /// `CorralNode.protocolVersion` of the sender (offers from before it existed mean 1).
    public var protocolVersion: Int
    /// The cluster's expected votes as the sender knows them (0 from senders before it
    /// existed): a sync deadline settles only with offers from a majority of them.
    public var expectedVotes: Int

    public init(view: String, epoch: UInt64, version: UInt64, digest: String, protocolVersion: Int, expectedVotes: Int = 0) {
        self.view = view
        self.epoch = epoch
        self.version = version
        self.digest = digest
        self.protocolVersion = protocolVersion
        self.expectedVotes = expectedVotes
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        view = try c.decode(String.self, forKey: .view)
        epoch = try c.decode(UInt64.self, forKey: .epoch)
        version = try c.decode(UInt64.self, forKey: .version)
        digest = try c.decode(String.self, forKey: .digest)
        protocolVersion = try c.decodeIfPresent(Int.self, forKey: .protocolVersion) ?? 1
        expectedVotes = try c.decodeIfPresent(Int.self, forKey: .expectedVotes) ?? 0
    }
}

/// What the node agent feeds into the core, in arrival order.
public enum Input: Sendable {
    /// A Corosync configuration change; `quorate` is computed the same way on every member.
    /// `agentOnly`: nodes that left only Corral's group while their Corosync stays in the
    /// membership (the agent stopped or restarted): no fence agent for them — their watchdog
    /// resets them if the agent does not return within the lease.
    case membership(members: [NodeID], quorate: Bool, agentOnly: [NodeID] = [])
    /// votequorum's verdict changed without a membership change. Only the shell sees it, at its
    /// own moment, so the core does not start a sync round on it: gaining quorum asks every
    /// member for a new round through the agreed order.
    case quorum(Bool)
    /// A message in Corosync's agreed order (our own included).
    case delivered(Envelope)
    /// Time passed; sent every ~100 ms.
    case tick
    /// An operator request from the control socket; answered by a `.reply` directive.
    case request(id: UInt64, OperatorRequest, whatIf: Bool)
    /// Something this node's hypervisor reported.
    case hypervisor(HypervisorEvent)
    /// The configured fence agent finished for a node.
    /// `attempt` is the one its `runFenceAgent` carried: only the answer to the latest ask counts.
    case fenceAgentResult(NodeID, attempt: Int, fenced: Bool)
    /// The peers Corosync's own link heartbeat (knet) cannot reach right now, seconds before
    /// a membership change can say so; sent when the set changes.
    case unreachable([NodeID])
    /// The shell could not multicast this node's message `sequence`, even after its own
    /// retries: the core re-sends what must arrive (sync offers, facts, heartbeats) and
    /// refuses the operator request it carried.
    case broadcastFailed(sequence: UInt64, reason: String)
    /// The watchdog cannot be armed as asked (device error, timeout not supported or not
    /// taken): this node cannot promise to reset itself if its agent hangs, so it takes no
    /// VMs and drains the ones it has (live; nothing is stopped for it).
    case watchdogFailed(reason: String)
    /// A delivered message could not be decoded (garbled, or from a peer of another protocol
    /// version): this node may now miss a command the others applied, so it stops applying
    /// commands and fetches the state again.
    case undecodable(from: NodeID, reason: String)
    /// A patch hook this node's shell ran (for `runPatchHook`) has ended.
    case patchHookFinished(run: Int, phase: PatchPhase, attempt: Int, PatchHookResult)
    /// What this node's storage shell reports (a disk operation's end, a look at a volume).
    case storage(StorageEvent)
}

/// The storage shell's answers to `runDiskOperation` and `probeVolume`.
public enum StorageEvent: Sendable, Equatable {
    case operationFinished(DiskOperation, DiskOperationOutcome)
    case probed(volume: String, VolumeProbe)
}

/// What this node's hypervisor says happened, in its own words.
public enum HypervisorEvent: Sendable, Equatable {
    /// The VM runs here now (started here, or arrived by migration).
    case running(String)
    case stopped(String, crashed: Bool)
    /// A start failed; the VM does not run here.
    case startFailed(String, reason: String)
    case migrationProgress(job: Int, MigrationProgress)
    /// Switchover done: the VM left this node for the destination.
    case migrationCompleted(job: Int, vm: String, downtimeMs: Int)
    case migrationFailed(job: Int, reason: String)
    /// A finished migration from here spent this long (ms) not sending: set-up (the destination's
    /// QEMU, the connection) plus switch-over.
    case migrationOverhead(ms: Int)
    /// Everything running here (at start-up, to reconcile).
    case inventory([String])
    /// A stop (destroy) failed: the VM may still run here. The core asks again.
    case stopFailed(String, reason: String)
    /// The hypervisor could not be asked about the VM: whether it runs is unknown, which is
    /// not a crash (nothing is restarted for it).
    case queryFailed(String, reason: String)
}

/// What the core asks its shell to do.
public enum Directive: Sendable, Equatable {
    /// Multicast with agreed ordering to the whole group.
    case broadcast(Envelope)
    case startVM(VMSpec, leaseTokens: [UInt64])
    case stopVM(String, reason: String)
    case migrateVM(MigrationJob, VMSpec, destinationName: String)
    /// On the destination: a migration to this node has started (prepare storage, expect the VM).
    case prepareIncoming(MigrationJob, VMSpec)
    /// Create the guest paused, ready for a failover here that is not yet allowed (its node is
    /// not fenced yet); it runs only when a `startVM` for it follows.
    case stageVM(VMSpec)
    /// Discard a staged guest that will not start here after all.
    case unstageVM(String)
    case setMigrationBandwidth(job: Int, vm: String, MiBps: Int)
    case abortMigration(job: Int, vm: String)
    /// Run the fence agent against a node; answer with `fenceAgentResult` and the same `attempt`.
    case runFenceAgent(NodeID, name: String, attempt: Int)
    /// The self-fence lease now runs until this local time: keep the watchdog fed until then.
    case renewLease(until: Millis)
    /// As the volume's coordinator: bring the image to the operation's end state (checking what
    /// is already there, so a repeat does nothing twice); answer with `.storage(.operationFinished)`.
    case runDiskOperation(DiskOperation, volumePath: String)
    /// Look at a volume's directory (reachable? free space?); answer with `.storage(.probed)`.
    case probeVolume(String, path: String)
    case reply(id: UInt64, RequestReply)
    /// Run a patch run's hook command here, bounded by `timeoutMs`; answer with
    /// `patchHookFinished` carrying the same run, phase and attempt.
    case runPatchHook(run: Int, phase: PatchPhase, attempt: Int, command: String, timeoutMs: Int)
    /// The replicated state changed: persist it (the shell may batch).
    case stateChanged
    case log(String)
}
