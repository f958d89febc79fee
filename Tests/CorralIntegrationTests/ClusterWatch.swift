import CorralAgent
import CorralTestbed
import Dispatch
import Foundation
import Synchronization
import Testing

/// One guest as its node's own libvirtd lists it (`virsh list`: running and paused guests).
struct Domain: Equatable, Sendable {
    /// libvirt's domain id: a new one for every start of the guest on that node.
    var id: String
    var state: String
}

/// What every node's libvirtd ran at about one moment (the nodes are read in parallel).
/// A node whose libvirtd does not answer (a crashed node) is absent.
struct GuestSample: Sendable, CustomStringConvertible {
    var nodes: [Int: [String: Domain]]

    /// Guests listed on node `i` in any state (running, or paused: e.g. an incoming migration).
    func listed(on i: Int) -> Set<String> { Set((nodes[i] ?? [:]).keys) }
    func running(on i: Int) -> Set<String> { Set((nodes[i] ?? [:]).filter { $0.value.state == "running" }.keys) }
    func nodesListing(_ vm: String) -> [Int] { nodes.keys.sorted().filter { nodes[$0]?[vm] != nil } }
    func nodesRunning(_ vm: String) -> [Int] { nodes.keys.sorted().filter { nodes[$0]?[vm]?.state == "running" } }
    func domain(_ vm: String, on i: Int) -> Domain? { nodes[i]?[vm] }
    var allNames: Set<String> { Set(nodes.values.flatMap(\.keys)) }

    var description: String {
        nodes.keys.sorted().map { i in
            let guests = nodes[i]!.keys.sorted().map { "\($0)#\(nodes[i]![$0]!.id)(\(nodes[i]![$0]!.state))" }
            return "node\(i)=[\(guests.joined(separator: " "))]"
        }.joined(separator: " ")
    }
}

/// One poll: the hypervisors' truth plus the cluster's status as the asked nodes report it.
struct Observation {
    var guests: GuestSample
    /// Status per node that answered.
    var statuses: [Int: StatusReport]
    /// The first asked node that answered quorate and not syncing: the cluster's view.
    var status: StatusReport?

    func vm(_ name: String) -> StatusReport.VMRow? { status?.vms.first { $0.name == name } }
    func node(_ name: String) -> StatusReport.NodeRow? { status?.nodes.first { $0.name == name } }
    /// The node index the cluster's state places `vm` on (nil if none or unknown).
    func nodeIndex(of vm: String) -> Int? { self.vm(vm).flatMap { LocalCluster.index(of: $0.node) } }

    var summary: String {
        let s = status.map { s in
            "status(\(s.node)): members \(s.members) "
                + s.nodes.map { "\($0.name)=\($0.state)\($0.drainFailures.isEmpty ? "" : "\($0.drainFailures)")" }.joined(separator: " ") + "; "
                + s.vms.map { "\($0.name)@\($0.node):\($0.state)\($0.reason.isEmpty ? "" : "(\($0.reason))")" }.joined(separator: " ") + "; "
                + s.migrations.suffix(3).map { "job\($0.id) \($0.vm) \($0.from)→\($0.to) \($0.state) \($0.failure)" }.joined(separator: "; ")
        } ?? "no quorate node answered"
        return s + " | hypervisors: \(guests)"
    }
}

extension LocalCluster {
    /// 3 for "node3".
    static func index(of nodeName: String) -> Int? {
        nodeName.hasPrefix("node") ? Int(nodeName.dropFirst(4)) : nil
    }
}

/// Watches a libvirt cluster through its hypervisors. Every sample reads `virsh list` in every
/// node and checks DESIGN §3.1 — a VM runs on at most one node at any instant — recording an
/// issue for each violation. Also the test's timeline (printed with seconds since the start).
final class ClusterWatch {
    let cluster: LocalCluster
    let name: String
    private let started = Date()
    private(set) var samples = 0
    private(set) var violations: [String] = []

    init(_ cluster: LocalCluster, name: String) {
        self.cluster = cluster
        self.name = name
    }

    var elapsed: Double { Date().timeIntervalSince(started) }

    func note(_ text: String) {
        emit(String(format: "[%@ +%6.1f s] ", name, elapsed) + text)
    }

    // MARK: the hypervisors' truth

    /// Node `i`'s guests per its own libvirtd; nil if libvirtd does not answer within 10 s
    /// (virsh alone would wait forever on a hung libvirtd).
    static func guests(_ cluster: LocalCluster, _ i: Int) -> [String: Domain]? {
        let result = cluster.exec(i, ["timeout", "10", "virsh", "-q", "-c", "qemu:///system", "list"])
        guard result.status == 0 else { return nil }
        var out: [String: Domain] = [:]
        for line in result.output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 3 else { continue }
            out[fields[1]] = Domain(id: fields[0], state: fields[2...].joined(separator: " "))
        }
        return out
    }

    /// Reads the given nodes in parallel.
    func read(_ nodes: [Int]) -> GuestSample {
        let found = Mutex<[Int: [String: Domain]]>([:])
        let cluster = self.cluster
        DispatchQueue.concurrentPerform(iterations: nodes.count) { k in
            if let guests = Self.guests(cluster, nodes[k]) { found.withLock { $0[nodes[k]] = guests } }
        }
        return GuestSample(nodes: found.withLock { $0 })
    }

    /// Reads every node and checks that no VM runs on two of them.
    @discardableResult
    func sample(sourceLocation: SourceLocation = #_sourceLocation) -> GuestSample {
        let first = read(Array(1...cluster.nodes))
        samples += 1
        let suspects = first.allNames.filter { first.nodesRunning($0).count >= 2 }.sorted()
        guard !suspects.isEmpty else { return first }
        // The nodes are not read at one instant: a VM that switches over between two reads
        // looks as if it ran on both. Read those nodes once more; if the same domains (same
        // libvirt ids) still run on two nodes, both ran at once between the two reads.
        for vm in suspects {
            let nodes = first.nodesRunning(vm)
            let second = read(nodes)
            let still = nodes.filter { second.domain(vm, on: $0) == first.domain(vm, on: $0) }
            if still.count >= 2 {
                let text = String(format: "+%.1f s: VM %@ runs on nodes %@ at once (hypervisors: %@; again: %@)",
                                  elapsed, vm, "\(still)", "\(first)", "\(second)")
                violations.append(text)
                Issue.record("DESIGN §3.1 violated: \(text)", sourceLocation: sourceLocation)
            }
        }
        return first
    }

    // MARK: observing and waiting

    /// One poll: the hypervisors (checked) and the status of `statusFrom` nodes. Nodes that may
    /// be hung (a SIGSTOPped corrald) must be left out of `statusFrom`: they answer nothing.
    func observe(statusFrom nodes: [Int]) -> Observation {
        let guests = sample()
        var statuses: [Int: StatusReport] = [:]
        for i in nodes { if let s = cluster.status(i, timeoutSeconds: 3) { statuses[i] = s } }
        let status = nodes.lazy.compactMap { statuses[$0] }.first { $0.quorate && !$0.syncing }
        return Observation(guests: guests, statuses: statuses, status: status)
    }

    /// Polls (every ~0.3 s plus the time a sample takes) until `condition` holds, at most
    /// `seconds`; throws with the last observation on timeout.
    @discardableResult
    func waitUntil(_ what: String, seconds: Double = 60, statusFrom nodes: [Int]? = nil,
                   _ condition: (Observation) -> Bool) throws -> Observation {
        let nodes = nodes ?? Array(1...cluster.nodes)
        let start = Date()
        let deadline = start.addingTimeInterval(seconds)
        var last: Observation
        repeat {
            last = observe(statusFrom: nodes)
            if condition(last) {
                note(String(format: "  %@ (after %.1f s)", what, Date().timeIntervalSince(start)))
                return last
            }
            Thread.sleep(forTimeInterval: 0.3)
        } while Date() < deadline
        throw ClusterError("timed out after \(Int(seconds)) s waiting until \(what); last seen: \(last.summary)")
    }

    /// Runs `work` (e.g. a `corral … --wait` call) on another thread and samples the
    /// hypervisors until it returns (at most `seconds`).
    func whileSampling<T: Sendable>(_ what: String, seconds: Double = 90, _ work: @escaping @Sendable () -> T) throws -> T {
        let box = ResultBox<T>()
        DispatchQueue.global().async { box.set(work()) }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let value = box.get() { return value }
            sample()
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw ClusterError("\(what) did not return within \(Int(seconds)) s")
    }

    // MARK: the cluster's state against the hypervisors

    /// Where the state and the hypervisors disagree, for a settled cluster (no migration in
    /// flight): a running VM must be listed on its node and on no other, a VM that is not
    /// placed on no node; no node may run a guest Corral does not know; no member node may be
    /// over-committed.
    static func disagreements(_ o: Observation) -> [String] {
        guard let s = o.status else { return ["no quorate node answered"] }
        var problems: [String] = []
        for vm in s.vms {
            let listed = o.guests.nodesListing(vm.name)
            switch vm.state {
            case "running":
                guard let i = LocalCluster.index(of: vm.node) else { problems.append("\(vm.name) runs on no node"); continue }
                if o.guests.nodesRunning(vm.name) != [i] || listed != [i] {
                    problems.append("\(vm.name): state says \(vm.node), hypervisors list it on \(listed.map { "node\($0)" })")
                }
            case "stopped", "pending", "failed":
                if !listed.isEmpty { problems.append("\(vm.name) is \(vm.state) but listed on \(listed.map { "node\($0)" })") }
            default:
                problems.append("\(vm.name) is \(vm.state)")
            }
        }
        let known = Set(s.vms.map(\.name))
        for name in o.guests.allNames.subtracting(known).sorted() { problems.append("unknown guest \(name) on \(o.guests.nodesListing(name))") }
        for node in s.nodes where node.usedMemoryMiB > node.memoryMiB {
            problems.append("\(node.name) over-committed: \(node.usedMemoryMiB)/\(node.memoryMiB) MiB")
        }
        if s.migrations.contains(where: { $0.state == "queued" || $0.state == "running" }) { problems.append("a migration is in flight") }
        return problems
    }

    /// Waits until the state and the hypervisors agree (see `disagreements`).
    @discardableResult
    func waitUntilConsistent(_ what: String, seconds: Double = 30, statusFrom nodes: [Int]? = nil) throws -> Observation {
        var problems: [String] = []
        do {
            return try waitUntil("state and hypervisors agree (\(what))", seconds: seconds, statusFrom: nodes) { o in
                problems = Self.disagreements(o)
                return problems.isEmpty
            }
        } catch {
            throw ClusterError("\(error) — disagreements: \(problems)")
        }
    }

    // MARK: steps and commands

    /// One step of a scenario, named in the timeline.
    func step(_ title: String, _ body: () throws -> Void) throws {
        note("STEP \(title)")
        let start = Date()
        try body()
        note(String(format: "  step done in %.1f s", Date().timeIntervalSince(start)))
    }

    /// `corral ARGS…` inside node `i` on another thread while the hypervisors are sampled
    /// (for `--wait` commands, which block until the operation is over).
    @discardableResult
    func corralWhileSampling(_ i: Int, _ arguments: [String], seconds: Double = 90) throws -> (status: Int32, output: String) {
        let cluster = self.cluster
        let result = try whileSampling("corral \(arguments.joined(separator: " "))", seconds: seconds) {
            cluster.exec(i, [LocalCluster.binaries + "/corral"] + arguments)
        }
        let last = result.output.split(separator: "\n").last.map(String.init) ?? ""
        note("  node\(i)$ corral \(arguments.joined(separator: " ")) → exit \(result.status): \(last)")
        return result
    }

    /// Powers node `i` on again (`local-cluster start`; libvirtd with `ClusterTesting.libvirtEnvironment`).
    func start(_ i: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        let result = ClusterTesting.script(cluster, ["start", "\(i)"], environment: ClusterTesting.libvirtEnvironment)
        note("  started node\(i): exit \(result.status)")
        #expect(result.status == 0, "local-cluster start \(i): \(result.output)", sourceLocation: sourceLocation)
    }

    /// The last lines of every node's logs, printed when a scenario fails.
    func dumpLogs(lines: Int = 25) {
        for i in 1...cluster.nodes {
            for file in ["corrald.log", "watchdog.log"] {
                let text = cluster.file(i, file).split(separator: "\n").suffix(lines).joined(separator: "\n")
                emit("----- node\(i) \(file) (last \(lines) lines)\n\(text)")
            }
        }
    }

    /// `corral ARGS…` inside node `i`, logged with its outcome.
    @discardableResult
    func corral(_ i: Int, _ arguments: [String]) -> (status: Int32, output: String) {
        let result = cluster.exec(i, [LocalCluster.binaries + "/corral"] + arguments)
        let last = result.output.split(separator: "\n").last.map(String.init) ?? ""
        note("  node\(i)$ corral \(arguments.joined(separator: " ")) → exit \(result.status): \(last)")
        return result
    }

    /// `corral migrations --json` inside node `i`.
    func migrations(_ i: Int) throws -> [StatusReport.MigrationRow] {
        let result = cluster.exec(i, [LocalCluster.binaries + "/corral", "migrations", "--json"])
        guard result.status == 0 else { throw ClusterError("corral migrations --json failed: \(result.output)") }
        do { return try JSONCoding.decode([StatusReport.MigrationRow].self, from: Array(result.output.utf8)) } catch {
            throw ClusterError("corral migrations --json printed no migration list: \(error): \(result.output.prefix(500))")
        }
    }
}

/// Unbuffered, so the timeline shows up as it happens.
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// A value handed from another thread.
private final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)
    func set(_ v: T) { value.withLock { $0 = v } }
    func get() -> T? { value.withLock { $0 } }
}
