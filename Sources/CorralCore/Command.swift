/// A change to the replicated state. Every member applies the same commands in Corosync's
/// agreed order; `ClusterState.apply` re-checks each one, so a command that raced with
/// another change is refused identically everywhere instead of corrupting the state.
public enum Command: Codable, Sendable, Equatable {
    // Operator requests, validated where they were made and again when applied.
    case addVM(VMSpec, running: Bool, dirtyRateMiBps: Int)
    case removeVM(String)
    case startVM(String)
    case stopVM(String)
    case moveVM(String, to: NodeID)
    case drainNode(NodeID)
    case pauseNode(NodeID)
    case resumeNode(NodeID, failback: Bool)
    case setMigrationSettings(MigrationSettings)
    case setRecoverySettings(RecoverySettings)
    case addVolume(Volume)
    case removeVolume(String)
    /// To maintenance, `force` stops the volume's running VMs (refused without it while any run).
    case setVolumeState(String, VolumeState, force: Bool)
    /// Asks the volume's coordinator to hand its role to `to` once no operation runs on it.
    case moveVolumeCoordinator(String, to: NodeID)
    case queueDiskOperation(volume: String, disk: String, DiskOperation.Action)

    // What a node says about itself.
    case registerNode(NodeSpec)
    /// Round trip through the quorate membership; its return renews the sender's self-fence
    /// lease for `leaseMs` from when it was sent. Carrying the length lets every member wait
    /// out the lease the node really holds, even after the setting was lowered.
    case heartbeat(NodeID, sequence: UInt64, leaseMs: Int)

    // Coordinator decisions.
    case place(vm: String, on: NodeID)
    case markPending(vm: String, reason: String)
    case queueMigration(vm: String, to: NodeID, purpose: MigrationPurpose)
    case startMigration(job: Int, bandwidthMiBps: Int)
    case setMigrationBandwidth(job: Int, bandwidthMiBps: Int)
    case declareFenced(NodeID, method: String)
    case finishDrain(NodeID)
    case failDrain(NodeID, reasons: [String])
    /// The VM has run a whole crash window since its last crash: its crash count starts over.
    case forgiveCrashes(vm: String)
    /// The volume's coordinator role is `to`'s from now on (chosen by the cluster coordinator
    /// when there is none or it failed, or handed over by the volume's current coordinator).
    case assignVolumeCoordinator(String, to: NodeID)

    // Facts a node observed on its own hypervisor.
    case vmStarted(vm: String, on: NodeID, leaseTokens: [UInt64])
    case vmStopped(vm: String, on: NodeID, crashed: Bool)
    case migrationProgress(job: Int, MigrationProgress)
    case migrationFinished(job: Int, downtimeMs: Int)
    case migrationFailed(job: Int, reason: String)
    case dirtyRateMeasured(vm: String, MiBps: Int)
    case linkMeasured(node: NodeID, linkMiBps: Int, streamMiBps: Int)
    /// A real migration's set-up and switch-over time, folded into `migration.setupMs`.
    case migrationOverheadMeasured(ms: Int)

    // Patch runs (`PatchRun`): started and aborted by an operator, stepped by the coordinator,
    // hook starts and results reported by the node that runs the hook.
    case startPatchRun(PatchRun)
    /// `forceRecover` drops the run's record whatever its state, touching no node.
    case abortPatchRun(run: Int, forceRecover: Bool)
    /// `at`: the coordinator's clock, for the report's timeline.
    case advancePatch(run: Int, node: NodeID, to: PatchStep, attempt: Int, reason: String, at: Millis)
    case patchHookStarted(run: Int, node: NodeID, phase: PatchPhase, attempt: Int)
    case patchHookFinished(run: Int, node: NodeID, phase: PatchPhase, attempt: Int, PatchHookResult)
    case endPatchRun(run: Int, PatchRunState, outcome: String)
    case diskOperationFinished(id: Int, volume: String, DiskOperationOutcome)
    /// What `node` saw when it looked at a volume's directory.
    case volumeProbed(String, node: NodeID, VolumeProbe)
}

/// What applying a command did. A refusal changes nothing and says why.
public enum ApplyOutcome: Sendable, Equatable {
    case applied
    case refused(String)
}
