import CorralCore
import Testing

/// Placement rules, strongest first: memory is never over-committed; anti-affinity classes stay
/// apart while anything else fits; preferred owners in order; then the node with most free memory.
@Suite struct PlacementTests {
    /// Whatever mix of VM sizes arrives, no node ends up promised more memory than it has;
    /// what does not fit waits with a reason instead.
    @Test(arguments: [
        [4096, 4096, 4096, 4096, 4096],
        [3000, 3000, 3000, 3000, 3000, 3000, 3000],
        [512, 7000, 1024, 6000, 2048, 5000, 4096, 8192, 100],
        Array(repeating: 1500, count: 20),
    ])
    func neverOverCommitsMemory(sizes: [Int]) {
        var state = cluster("n1:8192 n2:8192 n3:4096")
        for (i, size) in sizes.enumerated() { state.pending(vm("vm\(i)", size)) }
        state.coordinate()
        for node in state.sortedNodes {
            #expect(state.memoryUsed(on: node.id) <= node.capacity.memoryMiB, "\(node.name) over-committed")
        }
        for vm in state.sortedVMs where vm.state == .pending {
            #expect(vm.reason.hasPrefix("no node has \(vm.spec.memoryMiB) MiB free"), "\(vm.name): \(vm.reason)")
        }
        #expect(state.sortedVMs.contains { $0.state == .starting }, "something must have been placed")
    }

    /// Two members of one class (say, two database replicas) go to different nodes, even
    /// against a preference, so one node failure cannot take both.
    @Test func antiAffinityKeepsAClassApart() {
        var state = cluster("n1:8192 n2:8192")
        state.run(vm("db1", 1024, anti: "db"), on: "n1")
        state.pending(vm("db2", 1024, preferred: ["n1"], anti: "db"))
        #expect(state.coordinate().placements(in: state) == ["db2@n2"])
    }

    /// Anti-affinity is a wish, not a reason to leave a VM down: with no other room it shares.
    @Test func antiAffinitySharesWhenNothingElseFits() {
        var state = cluster("n1:8192 n2:2048")
        state.run(vm("db1", 1024, anti: "db"), on: "n1")
        state.run(vm("filler", 2048), on: "n2")
        state.pending(vm("db2", 1024, anti: "db"))
        #expect(state.coordinate().placements(in: state) == ["db2@n1"])
    }

    /// Preferred owners are tried in the order given; a full first choice falls to the second,
    /// and with every preferred node full the VM still runs somewhere.
    @Test(arguments: [
        ([] as [String], "a@n3"),
        (["n2"], "a@n2"),
        (["n1"], "a@n3"),
        (["n1", "n2"], "a@n2"),
        (["n2", "n3"], "a@n2"),
    ])
    func preferredOwnersInOrder(preferred: [String], expected: String) {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.run(vm("big", 7800), on: "n1")
        state.run(vm("half", 4096), on: "n2")
        state.pending(vm("a", 1024, preferred: preferred))
        #expect(state.coordinate().placements(in: state) == [expected])
    }

    /// Without preferences VMs spread to the node with the most free memory; ties go to the lowest id.
    @Test func spreadsByMostFreeMemory() {
        var state = cluster("n1:8192 n2:16384 n3:16384")
        state.run(vm("x", 2048), on: "n2")
        for name in ["a", "b", "c", "d"] { state.pending(vm(name, 4096)) }
        // Free before: n1 8192, n2 14336, n3 16384. Each choice takes the roomiest node at that moment.
        #expect(state.coordinate().placements(in: state) == ["a@n3", "b@n2", "c@n3", "d@n2"])

        var even = cluster("n1:8192 n2:8192")
        even.pending(vm("a", 1024))
        even.pending(vm("b", 1024))
        #expect(even.coordinate().placements(in: even) == ["a@n1", "b@n2"])
    }

    /// When capacity is short the high-priority VM gets it, even if a low one sorts first by name;
    /// the low one waits with a reason naming the memory it lacks.
    @Test func highPriorityFirstWhenCapacityIsShort() throws {
        var state = cluster("n1:4096")
        state.pending(vm("aaa-low", 3072, priority: .low))
        state.pending(vm("zzz-high", 3072, priority: .high))
        #expect(state.coordinate().placements(in: state) == ["zzz-high@n1"])
        let low = try #require(state.vms["aaa-low"])
        #expect(low.state == .pending)
        #expect(low.reason == "no node has 3072 MiB free (largest free: 1024 MiB on n1)")
    }

    /// The texts operators see for each way placement can fail.
    @Test(arguments: [
        ("n1:4096 n2:2048", vm("huge", 5000), "no node has 5000 MiB free (largest free: 4096 MiB on n1)"),
        ("n1:4096:1", vm("wide", 512, vcpus: 8), "no node has room for 8 more vCPUs"),
    ])
    func failureTexts(nodes: String, spec: VMSpec, expected: String) {
        let state = cluster(nodes)
        let result = Placement.choose(spec, state: state, load: NodeLoad(state), candidates: Placement.candidates(state))
        guard case let .failure(why) = result else { Issue.record("placed \(spec.name): \(result)"); return }
        #expect(why.description == expected)
    }

    /// With every node paused (or down) the reason says so rather than blaming memory.
    @Test func noNodeAcceptsVMs() {
        var state = cluster("n1:8192 n2:8192")
        state.must(.pauseNode(state.id("n1")))
        state.lose("n2")
        let result = Placement.choose(vm("a", 512), state: state, load: NodeLoad(state), candidates: Placement.candidates(state))
        #expect(result == .failure(.noNodeAcceptsVMs))
        #expect(PlacementFailure.noNodeAcceptsVMs.description.hasPrefix("no node accepts VMs"))
    }

    /// A place command that would over-commit is refused when applied, whoever sent it.
    @Test func placeRefusesOverCommit() {
        var state = cluster("n1:4096")
        state.run(vm("a", 3072), on: "n1")
        state.pending(vm("b", 2048))
        #expect(state.refusal(of: .place(vm: "b", on: state.id("n1"))) == "VM b does not fit on n1")
    }
}
