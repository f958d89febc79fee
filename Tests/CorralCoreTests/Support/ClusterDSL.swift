import CorralCore
import Testing

// A tiny language for building cluster states in tests, so each test reads as the situation
// it checks rather than as the bookkeeping needed to reach it.

/// `cluster("n1:8192 n2:8192 n3:4096")`: nodes with ids 1, 2, 3 in the order written, memory
/// in MiB and an optional vCPU count (`n1:8192:4`; default 16). `link` sets every node's
/// measured migration link (MiB/s); 0 leaves it unmeasured.
func cluster(_ description: String, link: Int = 0, settings: ClusterSettings = .init(),
             sourceLocation: SourceLocation = #_sourceLocation) -> ClusterState {
    var state = ClusterState(settings: settings)
    for (i, word) in description.split(separator: " ").enumerated() {
        let parts = word.split(separator: ":").map(String.init)
        guard parts.count >= 2, let memory = Int(parts[1]) else {
            Issue.record("bad node description \(word)", sourceLocation: sourceLocation)
            continue
        }
        let vcpus = parts.count > 2 ? Int(parts[2]) ?? 16 : 16
        let spec = NodeSpec(id: NodeID(i + 1), name: parts[0], capacity: Capacity(memoryMiB: memory, vcpus: vcpus), linkMiBps: link)
        state.must(.registerNode(spec), sourceLocation: sourceLocation)
    }
    return state
}

/// A VM description with test-friendly defaults (medium priority, HA, one vCPU, no disks).
func vm(_ name: String, _ memoryMiB: Int, vcpus: Int = 1, priority: Priority = .medium, preferred: [String] = [],
        anti: String? = nil, ha: Bool = true, disks: [String] = []) -> VMSpec {
    VMSpec(name: name, memoryMiB: memoryMiB, vcpus: vcpus, priority: priority, preferredOwners: preferred,
           antiAffinityClass: anti, highlyAvailable: ha, disks: disks)
}

extension ClusterState {
    /// The id of a node by name; records an issue (and returns 0) for a name the test never made.
    func id(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) -> NodeID {
        guard let node = node(named: name) else {
            Issue.record("no node named \(name) in the test cluster", sourceLocation: sourceLocation)
            return 0
        }
        return node.id
    }

    /// Applies a command the test needs to succeed; a refusal fails the test where it was written.
    mutating func must(_ command: Command, sourceLocation: SourceLocation = #_sourceLocation) {
        if case let .refused(why) = apply(command) {
            Issue.record("\(command) was refused: \(why)", sourceLocation: sourceLocation)
        }
    }

    /// The refusal text of a command, or nil if it would apply. Never changes `self`.
    func refusal(of command: Command) -> String? {
        var copy = self
        if case let .refused(why) = copy.apply(command) { return why }
        return nil
    }

    /// Adds a VM that should run but has no node yet.
    mutating func pending(_ spec: VMSpec, dirty: Int = 0, sourceLocation: SourceLocation = #_sourceLocation) {
        must(.addVM(spec, running: true, dirtyRateMiBps: dirty), sourceLocation: sourceLocation)
    }

    /// Adds a VM and brings it to `running` on `node` the way the cluster does: place, then the
    /// node reports it started with the lease tokens it was given.
    mutating func run(_ spec: VMSpec, on node: String, dirty: Int = 0, sourceLocation: SourceLocation = #_sourceLocation) {
        pending(spec, dirty: dirty, sourceLocation: sourceLocation)
        let target = id(node, sourceLocation: sourceLocation)
        must(.place(vm: spec.name, on: target), sourceLocation: sourceLocation)
        must(.vmStarted(vm: spec.name, on: target, leaseTokens: tokens(of: spec.name)), sourceLocation: sourceLocation)
    }

    /// The current lease tokens of a VM's disks, in disk order.
    func tokens(of vm: String) -> [UInt64] {
        (vms[vm]?.spec.disks ?? []).map { leases[$0]?.token ?? 0 }
    }

    /// Queues and starts a migration; returns its job id.
    @discardableResult
    mutating func migrate(_ vm: String, to node: String, purpose: MigrationPurpose = .move,
                          sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        let job = nextJobID
        must(.queueMigration(vm: vm, to: id(node, sourceLocation: sourceLocation), purpose: purpose), sourceLocation: sourceLocation)
        must(.startMigration(job: job, bandwidthMiBps: 0), sourceLocation: sourceLocation)
        return job
    }

    /// The quorate membership loses these nodes (as after a state sync).
    mutating func lose(_ names: String...) {
        let gone = Set(names.map { id($0) })
        applyMembership(sortedNodes.map(\.id).filter { !gone.contains($0) })
    }

    /// Runs the coordinator and applies its decisions until it has nothing more to say (the
    /// replicated loop without hypervisors); returns every command it issued, refused or not.
    @discardableResult
    mutating func coordinate(_ context: Coordinator.Context = .init(now: 0), rounds: Int = 50,
                             sourceLocation: SourceLocation = #_sourceLocation) -> [Command] {
        var issued: [Command] = []
        for _ in 0..<rounds {
            let commands = Coordinator.plan(self, context)
            if commands.isEmpty { return issued }
            issued += commands
            for command in commands { _ = apply(command) }
        }
        Issue.record("coordinator still busy after \(rounds) rounds: \(Coordinator.plan(self, context))", sourceLocation: sourceLocation)
        return issued
    }

    /// Memory committed on a node by the VMs that occupy it.
    func memoryUsed(on node: NodeID) -> Int {
        vms.values.filter { $0.node == node && $0.occupiesNode }.reduce(0) { $0 + $1.spec.memoryMiB }
    }

    /// Where a VM is, by node name ("-" when nowhere).
    func whereIs(_ vm: String) -> String { nodeName(vms[vm]?.node) }
}

extension Array where Element == Command {
    /// The VMs placed by these commands, in order, with the node name they went to.
    func placements(in state: ClusterState) -> [String] {
        compactMap { if case let .place(vm, node) = $0 { "\(vm)@\(state.nodeName(node))" } else { nil } }
    }
}
