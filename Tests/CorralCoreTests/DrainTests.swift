import CorralCore
import Testing

/// Drains (DESIGN §3 rule 5): a drain that cannot place a VM is refused up front or stopped,
/// naming each VM and why; a VM is never stopped to finish a drain.
@Suite struct DrainTests {
    /// n1 runs three VMs; the other two nodes have room for them. Migrations are unlimited
    /// here (auto-tune off, no per-node cap): admission is MigrationSchedulerTests' subject.
    static func drainable() -> ClusterState {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.settings.migration.autoTune = false
        state.run(vm("a", 2048, preferred: ["n1"]), on: "n1")
        state.run(vm("b", 1024), on: "n1")
        state.run(vm("c", 512, preferred: ["n1"]), on: "n1")
        return state
    }

    /// Too little room elsewhere: the request is refused with one line per VM that cannot go,
    /// and nothing is broadcast (the planner returns no command).
    @Test func drainRefusedUpFrontListsEachUnplaceableVM() {
        var state = cluster("n1:8192 n2:3072")
        state.run(vm("small", 1024), on: "n1")
        state.run(vm("big1", 4096, priority: .high), on: "n1")
        state.run(vm("big2", 3072), on: "n1")
        let before = state
        let result = RequestPlanner.command(for: .drainNode("n1"), in: state)
        // big1 (high) is planned first and finds no 4096; big2 takes n2's 3072, so small finds no 1024.
        #expect(result == .failure(RequestRefusal("""
            cannot drain n1; nothing was changed:
              big1: no node has 4096 MiB free (largest free: 3072 MiB on n2)
              small: no node has 1024 MiB free (largest free: 0 MiB on n2)
            """)))
        #expect(state == before)
    }

    /// The coordinator queues a migration per VM, and marks the node drained once it is empty.
    @Test func drainQueuesMovesAndFinishesWhenEmpty() {
        var state = Self.drainable()
        let n1 = state.id("n1")
        state.must(.drainNode(n1))
        state.coordinate()
        let jobs = state.sortedJobs.filter { $0.source == n1 && $0.purpose == .drain }
        #expect(jobs.map(\.vm).sorted() == ["a", "b", "c"])
        #expect(jobs.allSatisfy { $0.state == .running })
        #expect(state.nodes[n1]?.admin == .draining, "not drained while VMs are still on it")

        for job in jobs { state.must(.migrationFinished(job: job.id, downtimeMs: 10)) }
        state.coordinate()
        #expect(state.nodes[n1]?.admin == .drained)
        #expect(state.nodes[n1]?.state == .drained)
        #expect(state.memoryUsed(on: n1) == 0)
    }

    /// A VM whose migration keeps failing stops the drain after maxAttempts, named with the
    /// last failure; the VM keeps running on the source and the node is left paused.
    @Test(arguments: [1, 2, 3])
    func failingMigrationsStopTheDrain(maxAttempts: Int) throws {
        var state = Self.drainable()
        state.settings.migration.maxAttempts = maxAttempts
        let n1 = state.id("n1")
        state.must(.drainNode(n1))
        var issued: [Command] = []
        for attempt in 1...maxAttempts {
            issued += state.coordinate()
            let job = try #require(state.activeJob(for: "b"), "attempt \(attempt) was not queued")
            state.must(.migrationFailed(job: job.id, reason: "link down \(attempt)"))
        }
        issued += state.coordinate()
        #expect(issued.contains(.failDrain(n1, reasons: ["b: migration failed \(maxAttempts) times (last: link down \(maxAttempts))"])))
        #expect(!issued.contains { if case .stopVM = $0 { true } else { false } })
        #expect(state.nodes[n1]?.admin == .paused)
        #expect(state.nodes[n1]?.drainFailures == ["b: migration failed \(maxAttempts) times (last: link down \(maxAttempts))"])
        #expect(state.vms["b"]?.state == .running)
        #expect(state.whereIs("b") == "n1")
    }

    /// Resume with failback brings back exactly the VMs whose first preferred owner is the node.
    @Test(arguments: [true, false])
    func resumeWithFailback(failback: Bool) {
        var state = Self.drainable()
        let n1 = state.id("n1")
        state.must(.drainNode(n1))
        state.coordinate()
        for job in state.sortedJobs { state.must(.migrationFinished(job: job.id, downtimeMs: 10)) }
        state.coordinate()
        state.run(vm("d", 512, preferred: ["n2", "n1"]), on: "n3")

        state.must(.resumeNode(n1, failback: failback))
        let back = state.sortedJobs.filter { $0.isActive }.map { "\($0.vm)→\(state.nodeName($0.destination)):\($0.purpose.rawValue)" }
        #expect(back == (failback ? ["a→n1:failback", "c→n1:failback"] : []))
        #expect(state.nodes[n1]?.admin == .active)
    }

    /// Draining a node that is already draining, or is down, is refused with the reason.
    @Test func drainRefusals() {
        var state = Self.drainable()
        state.must(.drainNode(state.id("n1")))
        #expect(RequestPlanner.command(for: .drainNode("n1"), in: state) == .failure("node n1 is already draining"))
        state.lose("n2")
        #expect(RequestPlanner.command(for: .drainNode("n2"), in: state) == .failure("node n2 is down"))
    }
}
