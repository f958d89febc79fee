/// The coordinator's decisions for a patch run: one node at a time, each step advanced by a
/// command in the agreed order, so a new coordinator (the old one died, or is the node being
/// patched) continues from the replicated state alone. Time comes in as `stepElapsedMs`: how
/// long this coordinator has seen the current step (a new coordinator starts counting afresh,
/// which only lengthens a timeout).
public enum PatchConductor {
    /// Extra time a hook gets beyond its own timeout (enforced by the node's shell) before the
    /// coordinator gives up on its answer: the answer has to travel and be applied.
    public static let answerGraceMs = 30_000

    public static func decide(_ state: ClusterState, _ context: Coordinator.Context) -> [Command] {
        guard let run = state.patchRun, run.state == .running else { return [] }
        let options = run.options
        let members = context.members
        let moves = Moves(run: run, now: context.now)
        func advance(_ progress: PatchNodeProgress, _ step: PatchStep, attempt: Int? = nil, reason: String = "") -> Command {
            moves.advance(progress, step, attempt: attempt, reason: reason)
        }
        // A resumed node is done once its failbacks have finished; meanwhile the next node goes on.
        let finished = run.nodes.filter { progress in
            progress.step == .resuming && !state.jobs.values.contains { $0.isActive && $0.destination == progress.node && $0.purpose == .failback }
        }.map { advance($0, .done) }
        guard let progress = run.working else {
            if run.failedCount > run.maxFailed {
                guard run.current == nil else { return finished }
                return [.endPatchRun(run: run.id, .stopped,
                                     outcome: "\(run.failedCount) node(s) failed, more than --max-failed \(run.maxFailed)")]
            }
            guard let next = run.nodes.first(where: { $0.step == .waiting }) else {
                guard run.current == nil else { return finished }
                let done = run.nodes.filter { $0.step == .done }.count
                return [.endPatchRun(run: run.id, .finished, outcome: "\(done) of \(run.nodes.count) node(s) patched, \(run.failedCount) failed")]
            }
            switch PatchPlanner.check(next.node, in: state, options: options, members: members) {
            case .ready: return finished + [advance(next, firstStep(options), attempt: 1)]
            case let .skip(why): return finished + [advance(next, .skipped, reason: why)]
            case let .refuse(why): return finished + [advance(next, .failed, attempt: 1, reason: "pre-check: \(why)")]
            }
        }
        return finished + step(progress, run, state, context, moves)
    }

    /// The commands that move a node of one run, stamped with the coordinator's clock.
    private struct Moves {
        var run: PatchRun
        var now: Millis

        func advance(_ progress: PatchNodeProgress, _ step: PatchStep, attempt: Int? = nil, reason: String = "") -> Command {
            .advancePatch(run: run.id, node: progress.node, to: step, attempt: attempt ?? progress.attempt, reason: reason, at: now)
        }

        /// A failed attempt starts over (its VMs stay where the drain put them), or fails the node.
        func failAttempt(_ progress: PatchNodeProgress, _ why: String) -> Command {
            let reason = "attempt \(progress.attempt): \(why)"
            guard progress.attempt <= run.options.retries else { return advance(progress, .failed, reason: reason) }
            return advance(progress, firstStep(run.options), attempt: progress.attempt + 1, reason: reason)
        }
    }

    /// The next command for the node being patched, if its step is over.
    private static func step(_ progress: PatchNodeProgress, _ run: PatchRun, _ state: ClusterState, _ context: Coordinator.Context,
                             _ moves: Moves) -> [Command] {
        let options = run.options
        let members = context.members
        let node = state.nodes[progress.node]
        let present = members.contains(progress.node) && node?.health == .up
        let elapsed = Int(context.stepElapsedMs)
        switch progress.step {
        case .pre, .hook, .post:
            let phase = progress.step.phase!
            if let result = progress.currentResult {
                if result.status != 0 { return [moves.failAttempt(progress, "\(phase.rawValue) hook exited \(result.status)")] }
                return [moves.advance(progress, stepAfter(phase, options))]
            }
            // A hook already started whose node leaves is handled by the state sync (rejoining).
            if !present && !(progress.step == .hook && progress.hookStarted) {
                return [moves.failAttempt(progress, "left the cluster during its \(phase.rawValue) hook")]
            }
            if elapsed > options.rebootTimeoutMs + answerGraceMs {
                return [moves.failAttempt(progress, "no answer from its \(phase.rawValue) hook within \(options.rebootTimeoutMs / 1000) s")]
            }
        case .draining:
            guard present, let node else { return [moves.failAttempt(progress, "left the cluster during its drain")] }
            switch node.admin {
            case .drained: return [moves.advance(progress, .hook)]
            case .paused: return [moves.failAttempt(progress, "drain failed: " + node.drainFailures.joined(separator: "; "))]
            case .active: return [moves.failAttempt(progress, "resumed by an operator during its drain")]
            case .draining: break
            }
        case .rejoining:
            if present { return [moves.advance(progress, options.post == nil ? .resuming : .post)] }
            if elapsed > options.rebootTimeoutMs {
                return [moves.advance(progress, .failed, reason: "did not come back within \(options.rebootTimeoutMs / 1000) s after its hook")]
            }
        default:
            break
        }
        return []
    }

    static func firstStep(_ options: PatchOptions) -> PatchStep { options.pre == nil ? .draining : .pre }

    private static func stepAfter(_ phase: PatchPhase, _ options: PatchOptions) -> PatchStep {
        switch phase {
        case .pre: .draining
        case .hook: options.post == nil ? .resuming : .post
        case .post: .resuming
        }
    }
}
