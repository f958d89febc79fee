/// The patch run's transitions. Each one re-checks that it still applies (the run, the node,
/// its step and attempt), so a decision or a hook result that raced with another change, or
/// arrived from an earlier attempt, is refused identically on every member.
extension ClusterState {
    mutating func startPatchRun(_ run: PatchRun) -> ApplyOutcome {
        if let current = patchRun, current.state == .running { return .refused("patch run \(current.id) is still running") }
        guard run.id == (patchRun?.id ?? 0) + 1 else { return .refused("patch run \(run.id) is not the next run") }
        if let unknown = run.nodes.first(where: { nodes[$0.node] == nil }) { return .refused("unknown node \(unknown.node)") }
        patchRun = run
        return .applied
    }

    mutating func abortPatchRun(_ id: Int, forceRecover: Bool) -> ApplyOutcome {
        guard var run = patchRun, run.id == id else { return .refused("no patch run \(id)") }
        if forceRecover {
            patchRun = nil
            return .applied
        }
        guard run.state == .running else { return .refused("patch run \(id) is \(run.state.rawValue), not running") }
        for index in run.nodes.indices {
            let progress = run.nodes[index]
            switch progress.step {
            case .waiting:
                run.nodes[index].step = .cancelled
                run.nodes[index].reason = "the run was aborted before its turn"
            case .hook, .rejoining:
                // Its hook may be rebooting it: it stays out of service until an operator looks.
                run.nodes[index].step = .failed
                run.nodes[index].reason = "the run was aborted during its hook: left \(nodes[progress.node]?.admin.rawValue ?? "?"); resume it by hand"
            case .resuming:
                // Patched; its failbacks go on.
                run.nodes[index].step = .done
            case .pre, .draining, .post:
                run.nodes[index].step = .cancelled
                run.nodes[index].reason = "the run was aborted; node resumed"
                _ = resumeNode(progress.node, failback: run.options.failback)
            default:
                break
            }
        }
        run.state = .aborted
        run.outcome = "aborted by an operator"
        patchRun = run
        return .applied
    }

    mutating func advancePatch(_ id: Int, node: NodeID, to step: PatchStep, attempt: Int, reason: String, at: Millis) -> ApplyOutcome {
        guard var run = patchRun, run.id == id, run.state == .running else { return .refused("patch run \(id) is not running") }
        guard let index = run.index(of: node) else { return .refused("node \(node) is not in patch run \(id)") }
        let progress = run.nodes[index]
        guard !progress.step.isFinal, attempt >= progress.attempt else {
            return .refused("\(nodeName(node)) is \(progress.step.rawValue) (attempt \(progress.attempt)) in patch run \(id)")
        }
        if step.isActive && step != .resuming || step == .waiting, let other = run.working, other.node != node {
            return .refused("patch run \(id) is working on \(nodeName(other.node))")
        }
        switch step {
        case .draining where nodes[node]?.admin != .drained:
            if case let .refused(why) = drainNode(node) { return .refused(why) }
        case .hook:
            run.nodes[index].moved = drainMoves(of: node)
        case .resuming:
            run.nodes[index].resumeFirstJob = nextJobID
            _ = resumeNode(node, failback: run.options.failback)
        case .done:
            run.nodes[index].returned = sortedJobs.filter { $0.destination == node && $0.purpose == .failback && $0.state == .succeeded
                && $0.id >= progress.resumeFirstJob }.map { PatchMove(vm: $0.vm, to: node, downtimeMs: $0.downtimeMs) }
        case .failed:
            // Left out of service, with its reason, for an operator to look at.
            if let admin = nodes[node]?.admin, admin != .paused {
                _ = resumeNode(node, failback: false)
                nodes[node]!.admin = .paused
            }
        default:
            break
        }
        run.nodes[index].step = step
        run.nodes[index].attempt = attempt
        run.nodes[index].hookStarted = false
        if !reason.isEmpty { run.nodes[index].reason = reason }
        run.nodes[index].timeline.append(PatchMark(step: step, attempt: attempt, at: at))
        patchRun = run
        return .applied
    }

    mutating func patchHookStarted(_ id: Int, node: NodeID, phase: PatchPhase, attempt: Int) -> ApplyOutcome {
        guard var run = patchRun, run.id == id, run.state == .running, let index = run.index(of: node),
              run.nodes[index].step.phase == phase, run.nodes[index].attempt == attempt, !run.nodes[index].hookStarted else {
            return .refused("the \(phase.rawValue) hook of \(nodeName(node)), attempt \(attempt), is not due")
        }
        run.nodes[index].hookStarted = true
        patchRun = run
        return .applied
    }

    mutating func patchHookFinished(_ id: Int, node: NodeID, phase: PatchPhase, attempt: Int, _ result: PatchHookResult) -> ApplyOutcome {
        guard var run = patchRun, run.id == id, run.state == .running, let index = run.index(of: node),
              run.nodes[index].step.phase == phase, run.nodes[index].attempt == attempt,
              run.nodes[index].currentResult == nil else {
            return .refused("the \(phase.rawValue) hook of \(nodeName(node)), attempt \(attempt), is not awaited")
        }
        run.nodes[index].hooks.append(PatchHookRecord(phase: phase, attempt: attempt, result: result))
        patchRun = run
        return .applied
    }

    mutating func endPatchRun(_ id: Int, _ end: PatchRunState, outcome: String) -> ApplyOutcome {
        guard var run = patchRun, run.id == id, run.state == .running, end != .running else { return .refused("patch run \(id) is not running") }
        guard run.current == nil else { return .refused("patch run \(id) is still working on a node") }
        for index in run.nodes.indices where run.nodes[index].step == .waiting {
            run.nodes[index].step = .cancelled
            run.nodes[index].reason = "the run stopped before its turn"
        }
        run.state = end
        run.outcome = outcome
        patchRun = run
        return .applied
    }

    /// A node that leaves the membership while its hook runs is rebooting (its hook's own
    /// answer dies with it): from this state sync on, the run waits for it to come back instead
    /// of for that answer, and its agent, restarted, never runs the hook again.
    mutating func noteRebootsDuringHooks(_ present: Set<NodeID>) {
        guard var run = patchRun, run.state == .running, let progress = run.current, let index = run.index(of: progress.node),
              progress.step == .hook, progress.hookStarted, !present.contains(progress.node) else { return }
        run.nodes[index].step = .rejoining
        run.nodes[index].hookStarted = false
        run.nodes[index].reason = ""
        patchRun = run
    }

    /// The VMs this node's current drain moved, with their downtime.
    private func drainMoves(of node: NodeID) -> [PatchMove] {
        let first = nodes[node]?.drainFirstJob ?? 0
        return sortedJobs.filter { $0.source == node && $0.purpose == .drain && $0.state == .succeeded && $0.id >= first }
            .map { PatchMove(vm: $0.vm, to: $0.destination, downtimeMs: $0.downtimeMs) }
    }
}
