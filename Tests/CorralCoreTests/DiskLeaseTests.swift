import CorralCore
import Testing

/// Disk leases (DESIGN §3 rule 2): one exclusive holder per disk, a fencing token that only
/// grows, and a holder with a stale token refused.
@Suite struct DiskLeaseTests {
    static let disk = "/csv/db.img"

    static func twoNodes() -> ClusterState {
        var state = cluster("n1:8192 n2:8192")
        state.pending(vm("db", 1024, disks: [disk]))
        return state
    }

    /// Placing a VM grants its node the exclusive lease and a fresh token.
    @Test func placeGrantsAnExclusiveLease() throws {
        var state = Self.twoNodes()
        let tokenBefore = state.nextToken
        state.must(.place(vm: "db", on: state.id("n1")))
        let lease = try #require(state.leases[Self.disk])
        #expect(lease.mode == .exclusive)
        #expect(lease.holders == [state.id("n1")])
        #expect(lease.token >= tokenBefore)
        #expect(state.nextToken > lease.token, "the next grant must get a bigger token")
    }

    /// A disk still leased to another node (here one being fenced) cannot be placed elsewhere.
    @Test func placeRefusedWhileTheDiskIsLeasedElsewhere() {
        var state = Self.twoNodes()
        state.leases[Self.disk] = DiskLease(disk: Self.disk, holders: [state.id("n1")], token: 7, mode: .exclusive)
        #expect(state.refusal(of: .place(vm: "db", on: state.id("n2"))) == "disk /csv/db.img is leased to n1")
        #expect(state.refusal(of: .place(vm: "db", on: state.id("n1"))) == nil, "its own holder may start it")
    }

    /// A finished migration moves the lease to the destination with a larger token, so the
    /// source's token is dead from the switchover on.
    @Test func migrationMovesTheLease() throws {
        var state = Self.twoNodes()
        state.must(.place(vm: "db", on: state.id("n1")))
        state.must(.vmStarted(vm: "db", on: state.id("n1"), leaseTokens: state.tokens(of: "db")))
        let before = try #require(state.leases[Self.disk])
        let job = state.migrate("db", to: "n2")
        #expect(state.leases[Self.disk] == before, "the lease stays with the source until switchover")
        state.must(.migrationFinished(job: job, downtimeMs: 20))
        let after = try #require(state.leases[Self.disk])
        #expect(after.holders == [state.id("n2")])
        #expect(after.token > before.token)
    }

    /// A node that reports a start with an old token (it was fenced and placed again since) is refused.
    @Test func staleTokenIsRefused() throws {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.run(vm("db", 1024, disks: [Self.disk]), on: "n1")
        let old = state.tokens(of: "db")
        state.lose("n1")
        state.must(.declareFenced(state.id("n1"), method: "test"))
        state.applyMembership(state.sortedNodes.map(\.id))  // n1 is back
        state.must(.place(vm: "db", on: state.id("n1")))
        let current = state.tokens(of: "db")
        #expect(current[0] > old[0])
        #expect(state.refusal(of: .vmStarted(vm: "db", on: state.id("n1"), leaseTokens: old)) == "stale lease token \(old[0]) for \(Self.disk)")
        #expect(state.refusal(of: .vmStarted(vm: "db", on: state.id("n1"), leaseTokens: current)) == nil)
    }

    /// Tokens only grow, across every grant and revoke in a VM's life.
    @Test func tokensOnlyGrow() {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        var seen: [UInt64] = []
        func record() { seen.append(state.leases[Self.disk]?.token ?? 0) }
        state.run(vm("db", 1024, disks: [Self.disk]), on: "n1"); record()
        state.must(.migrationFinished(job: state.migrate("db", to: "n2"), downtimeMs: 1)); record()
        state.must(.vmStopped(vm: "db", on: state.id("n2"), crashed: true)); record()
        state.coordinate(); record()
        state.lose(state.whereIs("db"))
        state.must(.declareFenced(state.vms["db"]!.node ?? 0, method: "test")); record()
        #expect(seen == seen.sorted() && Set(seen).count == seen.count, "tokens: \(seen)")
    }
}
