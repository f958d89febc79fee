import CorralCore
import Foundation
import Testing

/// State sync (DESIGN §2): members that meet exchange (epoch, version, digest); the most recent
/// quorate history wins (highest epoch, then version, ties to the lowest node id) and
/// everyone adopts it, byte for byte.
@Suite struct StateSyncTests {
    /// What one node brings to the meeting: its epoch and the VMs it alone knows about.
    struct Holding: Sendable {
        var epoch: UInt64
        var vms: [String]
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var holdings: [Holding]
        var winner: [String]
        var testDescription: String
    }

    static let cases: [Case] = [
        .init(holdings: [.init(epoch: 3, vms: ["x"]), .init(epoch: 5, vms: ["y"]), .init(epoch: 4, vms: ["z"])],
              winner: ["y"], testDescription: "highest epoch wins"),
        .init(holdings: [.init(epoch: 2, vms: ["x", "y", "z"]), .init(epoch: 3, vms: ["w"]), .init(epoch: 2, vms: [])],
              winner: ["w"], testDescription: "epoch beats a longer history"),
        .init(holdings: [.init(epoch: 4, vms: ["x"]), .init(epoch: 4, vms: ["y", "z"]), .init(epoch: 4, vms: ["w"])],
              winner: ["y", "z"], testDescription: "same epoch: higher version wins"),
        .init(holdings: [.init(epoch: 4, vms: ["x"]), .init(epoch: 4, vms: ["y"]), .init(epoch: 4, vms: ["z"])],
              winner: ["x"], testDescription: "full tie: lowest node id wins"),
        .init(holdings: [.init(epoch: 4, vms: ["x"]), .init(epoch: 4, vms: ["x"]), .init(epoch: 4, vms: ["x"])],
              winner: ["x"], testDescription: "already equal: nothing to send"),
    ]

    /// Three nodes each start from their own state; after one membership and its deliveries
    /// all hold the winner's VMs and identical digests.
    @Test(arguments: cases)
    func everyoneAdoptsTheWinner(_ c: Case) {
        let base = cluster("n1:8192 n2:8192 n3:8192")
        var states: [NodeID: ClusterState] = [:]
        for (i, holding) in c.holdings.enumerated() {
            var s = base
            s.epoch = holding.epoch
            for name in holding.vms { s.must(.addVM(vm(name, 512), running: false, dirtyRateMiBps: 0)) }
            states[NodeID(i + 1)] = s
        }
        let winningEpoch = c.holdings.map(\.epoch).max()!
        var group = Group(states)
        group.membership([1, 2, 3], quorate: true)
        #expect(Set(group.digests).count == 1, "digests differ: \(group.digests)")
        for id in group.ids {
            let state = group.nodes[id]!.state
            #expect(state.sortedVMs.map(\.name) == c.winner, "node \(id)")
            #expect(state.epoch == winningEpoch + 1, "a quorate sync starts a new epoch")
            #expect(group.nodes[id]!.syncing == false)
        }
    }

    /// A minority syncs too but does not start an epoch: only quorate histories count.
    @Test func minoritySyncKeepsTheEpoch() {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.epoch = 7
        var group = Group(state)
        group.membership([1], quorate: false)
        #expect(group.nodes[1]?.syncing == false)
        #expect(group.nodes[1]?.state.epoch == 7)
    }

    /// A busy state: running VMs with leases, a migration in flight, changed settings.
    static func busyState() -> ClusterState {
        var settings = ClusterSettings()
        settings.migration.maxPerNode = 3
        var state = cluster("n1:8192 n2:8192:8 n3:4096", link: 1_100, settings: settings)
        state.run(vm("web", 1024, priority: .high, preferred: ["n2", "n1"], anti: "front", disks: ["/csv/web.img"]), on: "n1")
        state.run(vm("db", 2048, disks: ["/csv/db-a.img", "/csv/db-b.img"]), on: "n2")
        state.pending(vm("batch", 512, priority: .low, ha: false))
        state.migrate("web", to: "n3")
        state.epoch = 12
        return state
    }

    /// A snapshot survives the wire exactly: encode → decode → encode gives the same bytes,
    /// the same value and the same digest.
    @Test func snapshotRoundTripsByteExactly() throws {
        let state = Self.busyState()
        let envelope = Envelope(origin: 2, sequence: 41, body: .snapshot(state, view: "v"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let bytes = try encoder.encode(envelope)
        let decoded = try JSONDecoder().decode(Envelope.self, from: bytes)
        #expect(try encoder.encode(decoded) == bytes)
        #expect(decoded == envelope)
        guard case let .snapshot(copy, _) = decoded.body else { Issue.record("not a snapshot"); return }
        #expect(copy.digest == state.digest)
    }

    /// Two states built separately, in different orders, are equal and have equal digests;
    /// a one-field change gives a different digest.
    @Test func digestIsDeterministic() {
        var a = cluster("n1:8192 n2:8192 n3:8192")
        var b = cluster("n1:8192 n2:8192 n3:8192")
        let names = (1...40).map { "vm\($0)" }
        for name in names { a.pending(vm(name, 256)) }
        for name in names.reversed() { b.pending(vm(name, 256)) }
        #expect(a == b)
        #expect(a.digest == b.digest)
        #expect(a.digest.count == 32)
        b.must(.dirtyRateMeasured(vm: "vm7", MiBps: 1))
        #expect(a.digest != b.digest)
    }

    /// A snapshot listing one node twice is rejected rather than silently merged.
    @Test func duplicateKeysAreRejected() throws {
        let bytes = try JSONEncoder().encode(Self.busyState())
        var object = try #require(try JSONSerialization.jsonObject(with: bytes) as? [String: Any])
        let nodes = try #require(object["nodes"] as? [Any])
        #expect(throws: Never.self) { try JSONDecoder().decode(ClusterState.self, from: bytes) }
        object["nodes"] = nodes + [nodes[0]]
        let doubled = try JSONSerialization.data(withJSONObject: object)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ClusterState.self, from: doubled) }
    }
}
