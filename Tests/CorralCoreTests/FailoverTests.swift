import CorralCore
import Testing

/// Failover (DESIGN §3 rule 3): a node that leaves holding VMs is fenced before anything of
/// its runs elsewhere; only then do its HA VMs become pending and its leases move on.
@Suite struct FailoverTests {
    /// Three nodes; n1 runs an HA VM with a disk and a non-HA VM; n2 holds nothing.
    static func loadedCluster() -> ClusterState {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.run(vm("web", 1024, disks: ["/csv/web.img"]), on: "n1")
        state.run(vm("scratch", 512, ha: false), on: "n1")
        return state
    }

    /// A node holding VMs must be fenced; one holding nothing is simply down.
    @Test func leavingNodeIsFencingOnlyIfItHoldsSomething() {
        var state = Self.loadedCluster()
        state.lose("n1", "n2")
        #expect(state.nodes[state.id("n1")]?.health == .fencing)
        #expect(state.nodes[state.id("n2")]?.health == .down)
    }

    /// Until the fence is declared the VM still counts as running on the lost node: nothing
    /// restarts it, because the lost node may still be writing its disk.
    @Test func vmsArePendingOnlyAfterDeclareFenced() {
        var state = Self.loadedCluster()
        state.lose("n1")
        #expect(state.vms["web"]?.state == .running)
        #expect(state.whereIs("web") == "n1")
        #expect(Coordinator.recovery(state).isEmpty)

        state.must(.declareFenced(state.id("n1"), method: "test"))
        #expect(state.vms["web"]?.state == .pending)
        #expect(state.vms["web"]?.reason == "failover from n1")
        #expect(state.vms["web"]?.node == nil)
        #expect(state.nodes[state.id("n1")]?.health == .fenced)
    }

    /// declareFenced is for a node being fenced (or a silent member); one already fenced is refused.
    @Test func declareFencedRefusedForAFencedNode() {
        var state = Self.loadedCluster()
        state.lose("n1")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        #expect(state.refusal(of: .declareFenced(state.id("n1"), method: "test")) == "node 1 is not being fenced")
    }

    /// A VM that is not highly available is stopped with a reason, never restarted elsewhere.
    @Test func nonHAVMsAreStopped() throws {
        var state = Self.loadedCluster()
        state.lose("n1")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        let scratch = try #require(state.vms["scratch"])
        #expect(scratch.state == .stopped)
        #expect(!scratch.desiredRunning)
        #expect(scratch.reason == "stopped: n1 failed and the VM is not highly available")
        #expect(!state.coordinate().placements(in: state).contains { $0.hasPrefix("scratch@") })
    }

    /// Fencing revokes the lost node's leases and bumps the token, so its old token is dead.
    @Test func leasesAreRevokedWithABiggerToken() throws {
        var state = Self.loadedCluster()
        let before = try #require(state.leases["/csv/web.img"])
        state.lose("n1")
        #expect(state.leases["/csv/web.img"] == before, "leases stay put until the fence")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        let after = try #require(state.leases["/csv/web.img"])
        #expect(after.holders.isEmpty)
        #expect(after.token > before.token)
    }

    /// A VM migrating away from a node that is then fenced may already have switched over to
    /// its destination: it is placed nowhere until the destination says whether it runs it.
    /// (It used to become pending at once, so a placement elsewhere raced with the destination
    /// adopting the guest it really ran: two copies.)
    @Test(arguments: [true, false])
    func migratingVMWhoseSourceIsFencedWaitsForTheDestination(switchedOver: Bool) {
        var state = Self.loadedCluster()
        let job = state.migrate("web", to: "n2")
        state.lose("n1")
        #expect(state.jobs[job]?.state == .running, "the destination may still receive it until the fence")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        #expect(state.jobs[job]?.state == .failed)
        #expect(state.jobs[job]?.failure == "n1 was fenced")
        #expect(state.vms["web"]?.state == .awaitingDestination)
        #expect(state.whereIs("web") == "n2")
        #expect(state.coordinate().placements(in: state).isEmpty, "nothing places a guest that may run on n2")
        #expect(state.refusal(of: .migrationFinished(job: job, downtimeMs: 5)) == "migration \(job) is not running")
        let n2 = state.id("n2")
        if switchedOver {
            state.must(.vmStarted(vm: "web", on: n2, leaseTokens: []))
            #expect(state.vms["web"]?.state == .running)
            #expect(state.leases["/csv/web.img"]?.holders == [n2])
        } else {
            state.must(.vmStopped(vm: "web", on: n2, crashed: false))
            #expect(state.vms["web"]?.state == .pending)
            #expect(state.vms["web"]?.crashCount == 0, "not a crash: an ordinary failover")
            #expect(state.coordinate().placements(in: state).count == 1)
        }
    }

    /// A source that no longer has the guest mid-migration (its host rebooted, its agent
    /// restarted) cannot say where it is: it may have switched over. The guest awaits the
    /// destination's word. (Before: it became pending and was restarted elsewhere while it ran
    /// on the destination; found by the simulator with a crash right at a switchover.)
    @Test(arguments: [true, false])
    func sourceThatLostTheGuestMidMigrationLeavesItToTheDestination(switchedOver: Bool) {
        var state = Self.loadedCluster()
        let job = state.migrate("web", to: "n2")
        state.must(.vmStopped(vm: "web", on: state.id("n1"), crashed: true))
        #expect(state.jobs[job]?.state == .failed)
        #expect(state.vms["web"]?.state == .awaitingDestination)
        #expect(state.whereIs("web") == "n2")
        #expect(state.coordinate().placements(in: state).isEmpty)
        let n2 = state.id("n2")
        state.must(switchedOver ? .vmStarted(vm: "web", on: n2, leaseTokens: []) : .vmStopped(vm: "web", on: n2, crashed: false))
        #expect(state.vms["web"]?.state == (switchedOver ? .running : .pending))
    }

    /// The destination of a guest awaiting its word is fenced too: the guest fails over.
    @Test func awaitingGuestFailsOverWhenItsDestinationIsFenced() {
        var state = Self.loadedCluster()
        _ = state.migrate("web", to: "n2")
        state.lose("n1", "n2")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        #expect(state.vms["web"]?.state == .awaitingDestination)
        state.must(.declareFenced(state.id("n2"), method: "test"))
        #expect(state.vms["web"]?.state == .pending)
        #expect(state.coordinate().placements(in: state) == ["web@n3"])
    }

    /// A lost destination whose source is alive is not fenced by its lease while the migration
    /// runs: a guest that switched over after the lease ran out is not covered by it. The
    /// source's answer (it aborts the migration) comes first.
    @Test func lostDestinationWaitsForTheLiveSourceBeforeItsLeaseFence() {
        var state = Self.loadedCluster()
        let job = state.migrate("web", to: "n2")
        state.lose("n2")
        let (n1, n2, n3) = (state.id("n1"), state.id("n2"), state.id("n3"))
        let context = Coordinator.Context(now: 100_000, leaseEnds: [n2: 1_000], members: [n1, n3])
        #expect(!Coordinator.plan(state, context).contains { if case .declareFenced(n2, _) = $0 { true } else { false } })
        state.must(.migrationFailed(job: job, reason: "aborted"))
        #expect(Coordinator.plan(state, context).contains { if case .declareFenced(n2, _) = $0 { true } else { false } })
    }

    /// A migration whose destination leaves is not failed by the membership change: the guest
    /// may already have switched over. The destination is fenced (it may run it), and the
    /// source's own report says where the guest is: failed → still on the source; finished →
    /// on the lost destination, so it fails over once that node is fenced.
    @Test(arguments: [false, true])
    func migrationToALostDestinationWaitsForTheSource(switchedOver: Bool) {
        var state = Self.loadedCluster()
        let job = state.migrate("web", to: "n2")
        state.lose("n2")
        #expect(state.jobs[job]?.state == .running)
        #expect(state.nodes[state.id("n2")]?.health == .fencing)
        if switchedOver {
            state.must(.migrationFinished(job: job, downtimeMs: 50))
            #expect(state.whereIs("web") == "n2")
            state.must(.declareFenced(state.id("n2"), method: "test"))
            #expect(state.vms["web"]?.state == .pending)
        } else {
            state.must(.migrationFailed(job: job, reason: "destination unreachable"))
            #expect(state.jobs[job]?.state == .failed)
            #expect(state.vms["web"]?.state == .running)
            #expect(state.whereIs("web") == "n1")
        }
    }

    /// The coordinator declares the fence lease + margin after the node could last have renewed
    /// its lease, not a millisecond earlier; a fence agent's confirmation ends the wait at once.
    @Test(arguments: [
        (Millis(3_499), false, nil as String?),
        (Millis(3_500), false, "self-fence lease expired"),
        (Millis(1_001), true, "fence agent confirmed"),
    ])
    func fencingWaitsForTheLease(now: Millis, confirmed: Bool, method: String?) {
        var state = Self.loadedCluster()
        state.settings.recovery.leaseMs = 2_000
        state.settings.recovery.marginMs = 500
        state.lose("n1")
        let n1 = state.id("n1")
        let context = Coordinator.Context(now: now, leaseEnds: [n1: 3_000], fenceConfirmed: confirmed ? [n1] : [])
        let fences = Coordinator.plan(state, context).compactMap { c -> String? in
            if case let .declareFenced(id, how) = c, id == n1 { how } else { nil }
        }
        #expect(fences == (method.map { [$0] } ?? []))
    }

    /// A member that holds VMs but whose heartbeats stopped (a hung agent) is fenced by its
    /// lease like a node that left; a silent member that holds nothing is left alone.
    @Test(arguments: [(Millis(3_499), false), (Millis(3_500), true)])
    func silentMemberIsFencedByItsLease(now: Millis, fenced: Bool) {
        var state = Self.loadedCluster()
        state.settings.recovery.leaseMs = 2_000
        state.settings.recovery.marginMs = 500
        let n1 = state.id("n1")
        let members = state.sortedNodes.map(\.id)
        let context = Coordinator.Context(now: now, leaseEnds: [n1: 3_000], members: members)
        let fences = Coordinator.plan(state, context).filter { if case .declareFenced(n1, _) = $0 { true } else { false } }
        #expect(fences.count == (fenced ? 1 : 0))
    }

    /// After the fence the HA VM restarts elsewhere, with a fresh lease on the new node.
    @Test func failoverRestartsElsewhere() {
        var state = Self.loadedCluster()
        state.lose("n1")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        #expect(state.coordinate().placements(in: state) == ["web@n2"])
        #expect(state.leases["/csv/web.img"]?.holders == [state.id("n2")])
    }
}
