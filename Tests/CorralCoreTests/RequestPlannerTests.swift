import CorralCore
import Testing

/// Operator requests are checked before anything is broadcast, and each bad one gets a message
/// that says exactly what is wrong, so an operator can fix it without reading logs.
@Suite struct RequestPlannerTests {
    /// n1 runs "a" (3 GiB) with little room left on n2; n3 is paused.
    static let state: ClusterState = {
        var state = cluster("n1:8192 n2:4096 n3:8192")
        state.run(vm("a", 3072), on: "n1")
        state.run(vm("filler", 2048), on: "n2")
        state.pending(vm("waiting", 512))
        state.must(.pauseNode(state.id("n3")))
        return state
    }()

    struct Case: CustomTestStringConvertible, Sendable {
        var request: OperatorRequest
        var message: String
        var testDescription: String { message }
    }

    static let nodes = "(nodes: n1, n2, n3)"
    static let refusals: [Case] = [
        .init(request: .startVM("nope"), message: "no VM named nope"),
        .init(request: .stopVM("nope"), message: "no VM named nope"),
        .init(request: .removeVM("nope"), message: "no VM named nope"),
        .init(request: .moveVM("nope", to: nil), message: "no VM named nope"),
        .init(request: .drainNode("n9"), message: "no node named n9 \(nodes)"),
        .init(request: .pauseNode("n9"), message: "no node named n9 \(nodes)"),
        .init(request: .resumeNode("n9", failback: true), message: "no node named n9 \(nodes)"),
        .init(request: .moveVM("a", to: "n9"), message: "no node named n9 \(nodes)"),
        .init(request: .moveVM("a", to: "n1"), message: "VM a already runs on n1"),
        .init(request: .moveVM("a", to: "n2"), message: "VM a needs 3072 MiB; n2 has 2048 MiB free"),
        .init(request: .moveVM("a", to: "n3"), message: "node n3 is paused and takes no VMs"),
        .init(request: .moveVM("a", to: nil), message: "cannot move a: no node has 3072 MiB free (largest free: 2048 MiB on n2)"),
        .init(request: .moveVM("waiting", to: "n2"), message: "VM waiting is pending, not running"),
        .init(request: .removeVM("a"), message: "VM a is running; stop it before removing it"),
        .init(request: .pauseNode("n3"), message: "node n3 is paused"),
        .init(request: .resumeNode("n1", failback: false), message: "node n1 is not paused, draining or drained"),
        .init(request: .setConfig(key: "migration.speed", value: "3"),
              message: "unknown setting migration.speed; known: " + RequestPlanner.configKeys.joined(separator: ", ")),
        .init(request: .setConfig(key: "migration.auto-tune", value: "yes"), message: "migration.auto-tune takes on or off, not yes"),
        .init(request: .setConfig(key: "migration.max-per-node", value: "-1"), message: "migration.max-per-node takes a whole number ≥ 0, not -1"),
        .init(request: .setConfig(key: "migration.max-cluster", value: "two"), message: "migration.max-cluster takes a whole number ≥ 0, not two"),
        .init(request: .setConfig(key: "migration.reserve-mbps", value: "2.5"), message: "migration.reserve-mbps takes a whole number ≥ 0, not 2.5"),
        .init(request: .setConfig(key: "migration.max-attempts", value: "0"), message: "migration.max-attempts must be at least 1"),
        .init(request: .setConfig(key: "fencing.lease-ms", value: "1999"), message: "fencing.lease-ms must be at least 2000 (a watchdog counts whole seconds)"),
        .init(request: .setConfig(key: "fencing.margin-ms", value: "soon"), message: "fencing.margin-ms takes a whole number ≥ 0, not soon"),
        .init(request: .addVM(vm("a", 512), start: true), message: "a VM named a already exists"),
        .init(request: .addVM(vm("b", 0), start: true), message: "memory must be a positive number of MiB, not 0"),
        .init(request: .addVM(vm("b", -5), start: true), message: "memory must be a positive number of MiB, not -5"),
        .init(request: .addVM(vm("b", 512, vcpus: 0), start: true), message: "vcpus must be positive, not 0"),
        .init(request: .addVM(vm("", 512), start: true), message: "VM name must be 1–64 characters"),
        .init(request: .addVM(vm(String(repeating: "x", count: 65), 512), start: true), message: "VM name must be 1–64 characters"),
        .init(request: .addVM(vm("web 1", 512), start: true), message: "VM name web 1 contains ' '; use letters, digits, '-', '_' and '.'"),
        .init(request: .addVM(vm("web/1", 512), start: true), message: "VM name web/1 contains '/'; use letters, digits, '-', '_' and '.'"),
        .init(request: .addVM(vm("b", 512, disks: ["disk.img"]), start: true), message: "disk disk.img must be an absolute path or VOLUME/DISK of a known volume"),
        .init(request: .addVM(vm("b", 512, preferred: ["n9"]), start: true), message: "preferred owner n9 is not a node of this cluster"),
        .init(request: .addVM(vm("b", 512, preferred: ["n1", "n1"]), start: true), message: "preferred owners list a node twice"),
        .init(request: .addVM(vm("b", 512, anti: ""), start: true), message: "anti-affinity class must not be empty"),
    ]

    @Test(arguments: refusals)
    func refusedWithASpecificMessage(_ c: Case) {
        #expect(RequestPlanner.command(for: c.request, in: Self.state) == .failure(RequestRefusal(c.message)))
    }

    /// Good requests become the one command that carries them out, with names turned into ids.
    @Test func validRequestsBecomeCommands() {
        let s = Self.state
        #expect(RequestPlanner.command(for: .pauseNode("n1"), in: s) == .success(.pauseNode(s.id("n1"))))
        #expect(RequestPlanner.command(for: .resumeNode("n3", failback: true), in: s) == .success(.resumeNode(s.id("n3"), failback: true)))
        var settings = s.settings.migration
        settings.maxPerNode = 3
        #expect(RequestPlanner.command(for: .setConfig(key: "migration.max-per-node", value: "3"), in: s) == .success(.setMigrationSettings(settings)))
        var recovery = s.settings.recovery
        recovery.leaseMs = 8_000
        #expect(RequestPlanner.command(for: .setConfig(key: "fencing.lease-ms", value: "8000"), in: s) == .success(.setRecoverySettings(recovery)))
        let spec = vm("b.2_x-y", 512, preferred: ["n2", "n1"], disks: ["/csv/b.img"])
        #expect(RequestPlanner.command(for: .addVM(spec, start: false), in: s) == .success(.addVM(spec, running: false, dirtyRateMiBps: 0)))
    }

    /// A request the planner accepts can still be refused when applied (state moved on in
    /// between): the apply path re-checks with the same messages.
    @Test func applyRechecksTheSameRules() {
        var state = Self.state
        state.must(.addVM(vm("b", 512), running: true, dirtyRateMiBps: 0))
        #expect(state.refusal(of: .addVM(vm("b", 512), running: true, dirtyRateMiBps: 0)) == "a VM named b already exists")
        #expect(state.refusal(of: .addVM(vm("c", 512, disks: ["rel"]), running: true, dirtyRateMiBps: 0)) == "disk rel must be an absolute path")
    }

    /// What-if answers with the plan a drain would start, and changes nothing.
    @Test func whatIfPlansWithoutChanging() throws {
        var state = cluster("n1:8192 n2:8192 n3:8192")
        state.run(vm("a", 2048), on: "n1")
        state.run(vm("b", 1024), on: "n1")
        let before = state
        let lines = try RequestPlanner.whatIf(.drainNode("n1"), in: state).get()
        #expect(lines.first == "would apply: drain n1")
        #expect(lines.contains("then: queue drain migration of a to n2"))
        #expect(lines.contains("then: queue drain migration of b to n3"))
        #expect(lines.contains { $0.hasPrefix("then: start migration") })
        #expect(state == before)
        #expect(state.nodes[state.id("n1")]?.admin == .active)
        #expect(throws: RequestRefusal.self) { try RequestPlanner.whatIf(.drainNode("n9"), in: state).get() }
    }
}
