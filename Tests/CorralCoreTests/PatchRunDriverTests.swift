import CorralCore
import Testing

/// A patch run through real node instances: the coordinator patches itself (its own hook runs
/// on it), and when it dies mid-run the next coordinator carries the run to its end.
@Suite struct PatchRunDriverTests {
    /// Answers every hook a node's shell was asked to run (status 0) and lets time pass, until
    /// `done` holds or the bound runs out.
    static func runHooks(_ group: inout Group, answered: inout Set<String>, until done: (Group) -> Bool) {
        for _ in 0..<300 where !done(group) {
            group.advance(by: 100)
            for id in group.ids {
                for case let .runPatchHook(run, phase, attempt, _, _) in group.directives[id] ?? [] {
                    let key = "\(id)/\(run)/\(phase.rawValue)/\(attempt)"
                    guard !answered.contains(key) else { continue }
                    answered.insert(key)
                    group.feed(id, .patchHookFinished(run: run, phase: phase, attempt: attempt,
                                                      PatchHookResult(status: 0, outputTail: "patched", durationMs: 3)))
                }
            }
            group.settle()
        }
    }

    @Test func theRunSurvivesItsDriverAndTheSelfPatchingCoordinator() {
        var settings = ClusterSettings()
        settings.expectedVotes = 5
        settings.recovery = RecoverySettings(leaseMs: 2_000, marginMs: 500, heartbeatMs: 250, fenceAgent: false)
        let state = cluster("n1:8192 n2:8192 n3:8192 n4:8192 n5:8192", settings: settings)
        var group = Group(state)
        group.membership([1, 2, 3, 4, 5], quorate: true)
        group.advance(by: 300)
        group.feed(1, .request(id: 1, .startPatchRun(PatchRequest(PatchOptions(hook: "patch"), order: ["n1", "n2", "n3"])), whatIf: false))
        group.settle()
        #expect(group.replies(1)[1] == .done("start patch run 1 over n1, n2, n3"))
        var answered: Set<String> = []
        // n1 coordinates and is patched first: it runs its own hook.
        Self.runHooks(&group, answered: &answered) { $0.nodes[2]!.state.patchRun?.nodes[1].step == .hook }
        #expect(group.nodes[2]!.state.patchRun?.nodes[0].step == .done)
        #expect(answered.contains("1/1/hook/1"))
        // The driver (n1, the coordinator) dies while n2's hook is due; n2 now coordinates its own patch.
        group.membership([2, 3, 4, 5], quorate: true)
        group.membership([1], quorate: false)
        Self.runHooks(&group, answered: &answered) { $0.nodes[2]!.state.patchRun?.state != .running }
        let run = group.nodes[2]!.state.patchRun!
        #expect(run.state == .finished)
        #expect(run.nodes.map(\.step) == [.done, .done, .done])
        #expect(answered.contains("2/1/hook/1") && answered.contains("3/1/hook/1"))
        #expect(Set(group.ids.filter { $0 != 1 }.map { group.nodes[$0]!.state.digest }).count == 1)
    }
}
