import CorralCore
import Foundation
import Testing

/// Cluster-aware patching runs (Docs/patching.md): one node at a time, drained live, hooked,
/// resumed; failures retried, then counted against --max-failed; no VM ever stopped.
@Suite struct PatchRunTests {
    /// Three nodes, two VMs each, every VM preferring the node it starts on (so failback
    /// brings it home after the node's patch).
    static func patchable(expectedVotes: Int = 3) -> ClusterState {
        var settings = ClusterSettings()
        settings.expectedVotes = expectedVotes
        var state = cluster("n1:8192 n2:8192 n3:8192", settings: settings)
        state.settings.migration.autoTune = false
        for (name, node) in [("a", "n1"), ("b", "n1"), ("c", "n2"), ("d", "n2"), ("e", "n3"), ("f", "n3")] {
            state.run(vm(name, 1024, preferred: [node]), on: node)
        }
        return state
    }

    static func start(_ state: inout ClusterState, _ request: PatchRequest, sourceLocation: SourceLocation = #_sourceLocation) {
        switch PatchPlanner.command(for: request, in: state) {
        case let .success(command): state.must(command, sourceLocation: sourceLocation)
        case let .failure(why): Issue.record("patch run refused: \(why)", sourceLocation: sourceLocation)
        }
    }

    /// The replicated loop of a run without hypervisors: the coordinator decides, migrations
    /// finish, the node being patched runs its hook and reports `hookStatus`. Returns every
    /// command issued. A stop of a VM fails the test: a patch run never stops one.
    @discardableResult
    static func drive(_ state: inout ClusterState, members: [NodeID]? = nil, now: Millis = 0, rounds: Int = 400,
                      until stop: (ClusterState) -> Bool = { _ in false },
                      hookStatus: (String, PatchPhase, Int) -> Int = { _, _, _ in 0 },
                      sourceLocation: SourceLocation = #_sourceLocation) -> [Command] {
        var issued: [Command] = []
        for _ in 0..<rounds {
            if stop(state) { return issued }
            let context = Coordinator.Context(now: now, members: members ?? state.sortedNodes.map(\.id))
            var commands = Coordinator.plan(state, context)
            for job in state.sortedJobs where job.state == .running { commands.append(.migrationFinished(job: job.id, downtimeMs: 7)) }
            if let run = state.patchRun, run.state == .running, let progress = run.current, let phase = progress.step.phase,
               progress.currentResult == nil {
                let name = state.nodeName(progress.node)
                commands.append(.patchHookStarted(run: run.id, node: progress.node, phase: phase, attempt: progress.attempt))
                commands.append(.patchHookFinished(run: run.id, node: progress.node, phase: phase, attempt: progress.attempt,
                                                   PatchHookResult(status: hookStatus(name, phase, progress.attempt), outputTail: "ok", durationMs: 5)))
            }
            if commands.isEmpty { return issued }
            for command in commands {
                if case .stopVM = command { Issue.record("a patch run stopped a VM", sourceLocation: sourceLocation) }
                _ = state.apply(command)
            }
            issued += commands
        }
        Issue.record("patch run still busy after \(rounds) rounds", sourceLocation: sourceLocation)
        return issued
    }

    static func steps(_ state: ClusterState) -> [String] {
        state.patchRun!.nodes.map { "\(state.nodeName($0.node)):\($0.step.rawValue)" }
    }

    /// Every node patched in turn, every VM running throughout, moved and brought back by failback.
    @Test(arguments: [false, true])
    func aRunPatchesEveryNodeAndBringsVMsHome(withPreAndPost: Bool) {
        var state = Self.patchable()
        Self.start(&state, PatchRequest(PatchOptions(hook: "patch", pre: withPreAndPost ? "pre" : nil, post: withPreAndPost ? "post" : nil)))
        Self.drive(&state)
        let run = state.patchRun!
        #expect(run.state == .finished)
        #expect(Self.steps(state) == ["n1:done", "n2:done", "n3:done"])
        #expect(run.nodes.allSatisfy { $0.moved.count == 2 && $0.moved.allSatisfy { $0.downtimeMs == 7 } })
        #expect(run.nodes.allSatisfy { $0.returned.map(\.vm).sorted() == $0.moved.map(\.vm).sorted() }, "failback brought each back")
        #expect(run.nodes.allSatisfy { $0.hooks.map(\.phase) == (withPreAndPost ? [.pre, .hook, .post] : [.hook]) })
        #expect(state.sortedVMs.allSatisfy { $0.state == .running })
        #expect(state.sortedVMs.map { "\($0.name)@\(state.whereIs($0.name))" } == ["a@n1", "b@n1", "c@n2", "d@n2", "e@n3", "f@n3"])
        #expect(state.sortedNodes.allSatisfy { $0.admin == .active })
    }

    /// A hook that always fails on n2: retried, then n2 fails and is left paused with its
    /// reason; with --max-failed 0 the run stops there (n3 is never touched), with 1 it goes on.
    @Test(arguments: [(retries: 0, maxFailed: 0), (retries: 2, maxFailed: 0), (retries: 1, maxFailed: 1)])
    func failingHookIsRetriedThenCountsAgainstMaxFailed(retries: Int, maxFailed: Int) {
        var state = Self.patchable()
        Self.start(&state, PatchRequest(PatchOptions(hook: "patch", maxFailed: maxFailed, retries: retries), order: ["n1", "n2", "n3"]))
        Self.drive(&state, hookStatus: { node, phase, _ in node == "n2" && phase == .hook ? 3 : 0 })
        let run = state.patchRun!
        let n2 = run.nodes[1]
        #expect(n2.step == .failed)
        #expect(n2.attempt == retries + 1)
        #expect(n2.hooks.filter { $0.phase == .hook }.count == retries + 1)
        #expect(n2.reason == "attempt \(retries + 1): hook hook exited 3")
        #expect(state.nodes[state.id("n2")]?.admin == .paused)
        if maxFailed == 0 {
            #expect(run.state == .stopped)
            #expect(Self.steps(state) == ["n1:done", "n2:failed", "n3:cancelled"])
        } else {
            #expect(run.state == .finished)
            #expect(Self.steps(state) == ["n1:done", "n2:failed", "n3:done"])
        }
        #expect(state.nodes[state.id("n1")]?.admin == .active && state.nodes[state.id("n3")]?.admin == .active)
        #expect(state.sortedVMs.allSatisfy { $0.state == .running })
    }

    /// The node leaves the membership while its hook runs (it reboots): the run waits for it
    /// to come back, counts that as the hook's success, and never asks for the hook again.
    @Test func aNodeRebootingDuringItsHookIsWaitedFor() {
        var state = Self.patchable()
        Self.start(&state, PatchRequest(PatchOptions(hook: "reboot"), order: ["n1", "n2", "n3"]))
        let n1 = state.id("n1")
        Self.drive(&state, until: { $0.patchRun!.current?.step == .hook })
        let run = state.patchRun!.id
        #expect(state.patchRun!.current?.step == .hook)
        state.must(.patchHookStarted(run: run, node: n1, phase: .hook, attempt: 1))
        state.lose("n1")
        #expect(state.patchRun!.current?.step == .rejoining)
        #expect(state.refusal(of: .patchHookFinished(run: run, node: n1, phase: .hook, attempt: 1,
                                                     PatchHookResult(status: -1, outputTail: "", durationMs: 0))) != nil)
        // Still away: nothing happens until the reboot timeout.
        let others = [state.id("n2"), state.id("n3")]
        #expect(Coordinator.plan(state, .init(now: 0, members: others, stepElapsedMs: 60_000)).isEmpty)
        // Back: post (none) → resume with failback → next node.
        state.applyMembership([n1] + others)
        Self.drive(&state)
        #expect(state.patchRun!.state == .finished)
        #expect(state.patchRun!.nodes[0].hooks.isEmpty, "the hook's answer died with the reboot")
        #expect(Self.steps(state) == ["n1:done", "n2:done", "n3:done"])
    }

    /// A node that does not come back within the reboot timeout fails (no retry: it is not
    /// there to retry on); the run stops at --max-failed 0.
    @Test func aNodeThatDoesNotComeBackFails() {
        var state = Self.patchable()
        Self.start(&state, PatchRequest(PatchOptions(hook: "reboot", rebootTimeoutMs: 60_000), order: ["n1", "n2", "n3"]))
        let n1 = state.id("n1")
        Self.drive(&state, until: { $0.patchRun!.current?.step == .hook })
        state.must(.patchHookStarted(run: 1, node: n1, phase: .hook, attempt: 1))
        state.lose("n1")
        let others = [state.id("n2"), state.id("n3")]
        for command in Coordinator.plan(state, .init(now: 0, members: others, stepElapsedMs: 60_001)) { _ = state.apply(command) }
        #expect(state.patchRun!.nodes[0].step == .failed)
        #expect(state.patchRun!.nodes[0].reason == "did not come back within 60 s after its hook")
        Self.drive(&state, members: others)
        #expect(state.patchRun!.state == .stopped)
        #expect(Self.steps(state) == ["n1:failed", "n2:cancelled", "n3:cancelled"])
    }

    /// Before each node: quorum without it, room for its VMs, keep-running budgets.
    @Test(arguments: [
        ("n1:8192 n2:8192 n3:8192", [String: Int](), ["n2"], "quorum would not survive its absence (1 of 3 votes left)"),
        ("n1:8192 n2:1024 n3:1024", [String: Int](), [], "the other nodes cannot take its VMs: a: no node has 1024 MiB free (largest free: 0 MiB on n2); b: no node has 1024 MiB free (largest free: 0 MiB on n2)"),
        ("n1:8192 n2:8192 n3:8192", ["web": 3], [], "--keep-running web=3: its VMs would run on 2 node(s) while it is out"),
    ])
    func preChecksRefuseANodeTheClusterCannotDoWithout(nodes: String, keep: [String: Int], down: [String], refusal: String) {
        var state = cluster(nodes)
        state.run(vm("a", 1024, anti: "web"), on: "n1")
        state.run(vm("b", 1024), on: "n1")
        state.run(vm("c", 1024, anti: "web"), on: "n2")
        state.run(vm("d", 1024, anti: "web"), on: "n3")
        let members = state.sortedNodes.map(\.id).filter { id in !down.contains { state.id($0) == id } }
        let options = PatchOptions(hook: "x", maxFailed: 0, keepRunning: keep)
        #expect(PatchPlanner.check(state.id("n1"), in: state, options: options, members: members) == .refuse(refusal))
    }

    /// Bad requests are refused with a specific reason and change nothing.
    @Test(arguments: [
        (PatchRequest(PatchOptions(hook: "x"), order: ["n1", "n9"]), "no node named n9 in --order (nodes: n1, n2, n3)"),
        (PatchRequest(PatchOptions(hook: "x"), order: ["n1", "n1"]), "node n1 is named twice in --order"),
        (PatchRequest(PatchOptions(hook: "x", keepRunning: ["db": 1])), "--keep-running db: no VM has anti-affinity class db"),
        (PatchRequest(PatchOptions(hook: "")), "a patch run needs --hook CMD"),
        (PatchRequest(PatchOptions(hook: "x", rebootTimeoutMs: 0)), "--reboot-timeout must be longer than 0"),
    ])
    func badRequestsAreRefused(request: PatchRequest, refusal: String) {
        let state = Self.patchable()
        #expect(RequestPlanner.command(for: .startPatchRun(request), in: state) == .failure(RequestRefusal(refusal)))
    }

    /// One run at a time; abort resumes the node being worked on and cancels the rest;
    /// --force-recover clears the record.
    @Test func oneRunAtATimeAbortAndForceRecover() {
        var state = Self.patchable()
        Self.start(&state, PatchRequest(PatchOptions(hook: "x"), order: ["n1", "n2", "n3"]))
        Self.drive(&state, until: { $0.patchRun!.current?.step == .draining })
        #expect(state.patchRun!.current?.step == .draining)
        guard case .failure = RequestPlanner.command(for: .startPatchRun(PatchRequest(PatchOptions(hook: "y"))), in: state) else {
            Issue.record("a second run was accepted while one runs")
            return
        }
        guard case let .success(abort) = RequestPlanner.command(for: .abortPatchRun(forceRecover: false), in: state) else {
            Issue.record("abort refused")
            return
        }
        state.must(abort)
        #expect(state.patchRun!.state == .aborted)
        #expect(Self.steps(state) == ["n1:cancelled", "n2:cancelled", "n3:cancelled"])
        #expect(state.nodes[state.id("n1")]?.admin == .active)
        Self.drive(&state)
        #expect(state.sortedVMs.allSatisfy { $0.state == .running })
        state.must(.abortPatchRun(run: 1, forceRecover: true))
        #expect(state.patchRun == nil)
    }

    /// --what-if lists the order and each node's plan, and changes nothing.
    @Test func whatIfChangesNothing() throws {
        let state = Self.patchable()
        let lines = try RequestPlanner.whatIf(.startPatchRun(PatchRequest(PatchOptions(hook: "x"), order: ["n2", "n1"])), in: state).get()
        #expect(lines.first == "would patch 2 node(s) in this order: n2, n1; stop after more than 0 failed; 3 retries per node")
        #expect(lines.count == 3)
        #expect(lines[1].hasPrefix("n2: drain live (c → "))
        #expect(state == Self.patchable())
    }

    /// The run's record travels in the replicated state and survives encoding; a state
    /// without a run keeps its old bytes (no `patchRun` key).
    @Test func theRunIsPartOfTheReplicatedState() throws {
        var state = Self.patchable()
        let before = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        #expect(!before.contains("patchRun"))
        Self.start(&state, PatchRequest(PatchOptions(hook: "x")))
        Self.drive(&state, until: { $0.patchRun!.current?.step == .hook })
        let decoded = try JSONDecoder().decode(ClusterState.self, from: JSONEncoder().encode(state))
        #expect(decoded == state)
        #expect(decoded.digest == state.digest)
    }
}
