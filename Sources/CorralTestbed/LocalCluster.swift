import CorralAgent
import CorralCore
import Foundation

/// Drives `Deploy/local-cluster` from Swift: real Corosync nodes in network namespaces, each
/// with its own corrald (and, with `.libvirt`, its own libvirtd running real QEMU guests).
/// Shared by the integration tests, `corral-bench` and the chaos campaign, so every one of
/// them means the same thing by "node I", "crash", "partition" and "what runs where".
public struct LocalCluster: Sendable {
    public enum Hypervisor: String, Sendable { case none, libvirt }

    /// The checkout this binary was built from (the Deploy/ scripts live there).
    public static let repository: String = {
        if let repo = ProcessInfo.processInfo.environment["CORRAL_REPO"] { return repo }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    public static let script = repository + "/Deploy/local-cluster"

    /// Binaries of this build: $CORRAL_BIN, else the newest of .build/release and .build/debug.
    public static var binaries: String {
        if let bin = ProcessInfo.processInfo.environment["CORRAL_BIN"] { return bin }
        let candidates = ["release", "debug"].map { repository + "/.build/" + $0 }
        func modified(_ dir: String) -> Date {
            (try? FileManager.default.attributesOfItem(atPath: dir + "/corrald")[.modificationDate] as? Date) ?? .distantPast
        }
        return candidates.max { modified($0) < modified($1) }!
    }

    /// Which cluster: `CORRAL_CLUSTER_ID` (0–9; namespaces corral{id}-nI, subnet 10.99.{id}.0/24).
    public let id: Int
    /// Its base directory (node I's files are in base/nI).
    public let base: String
    public let nodes: Int

    public init(id: Int, base: String, nodes: Int) {
        self.id = id
        self.base = base
        self.nodes = nodes
    }

    /// Brings a fresh cluster up (tearing down a stale one of the same id first).
    public static func up(id: Int, base: String, nodes: Int, hypervisor: Hypervisor = .none, token: Int = 1000,
                          fenceAgent: Bool = false, memoryMiB: Int? = nil) throws(ClusterError) -> LocalCluster {
        let cluster = LocalCluster(id: id, base: base, nodes: nodes)
        cluster.down()
        var arguments = ["up", "--nodes", "\(nodes)", "--token", "\(token)", "--hypervisor", hypervisor.rawValue]
        if fenceAgent { arguments.append("--fence-agent") }
        if let memoryMiB { arguments += ["--memory", "\(memoryMiB)"] }
        let result = cluster.script(arguments)
        guard result.status == 0 else {
            cluster.down()
            throw ClusterError("local-cluster up failed: \(result.output.suffix(2000))")
        }
        try cluster.waitUntil("every agent answers and is quorate", seconds: 60) {
            (1...nodes).allSatisfy { cluster.status($0)?.quorate == true }
        }
        return cluster
    }

    /// Stops everything of this cluster and removes its namespaces and files (idempotent).
    public func down() { script(["down"]) }

    // MARK: commands

    /// Runs `Deploy/local-cluster ARGS…` for this cluster.
    @discardableResult
    public func script(_ arguments: [String]) -> (status: Int32, output: String) {
        let result = CommandRunner.run([Self.script] + arguments, environment: [
            "CORRAL_BIN": Self.binaries, "CORRAL_CLUSTER_DIR": base, "CORRAL_CLUSTER_ID": "\(id)",
        ])
        return (result.status, result.output)
    }

    /// Runs a command inside node `i` (its network, mount and UTS namespaces).
    @discardableResult
    public func exec(_ i: Int, _ arguments: [String]) -> (status: Int32, output: String) {
        script(["exec", "\(i)"] + arguments)
    }

    /// Runs `corral ARGS…` inside node `i`.
    @discardableResult
    public func corral(_ i: Int, _ arguments: String...) -> (status: Int32, output: String) {
        exec(i, [Self.binaries + "/corral"] + arguments)
    }

    /// Node `i`'s status over its control socket (reached through its run directory); nil if it
    /// does not answer.
    public func status(_ i: Int, timeoutSeconds: Double = 10) -> StatusReport? {
        let socket = "\(base)/n\(i)/run/corral/corral.sock"
        guard let bytes = try? ControlSocketClient.request(path: socket, line: JSONCoding.encode(ControlRequest.status), timeoutSeconds: timeoutSeconds),
              case let .status(report)? = try? JSONCoding.decode(ControlResponse.self, from: bytes) else { return nil }
        return report
    }

    /// Sends an operator request to node `i`'s corrald directly.
    public func request(_ i: Int, _ request: OperatorRequestLine, timeoutSeconds: Double = 60) -> ControlResponse? {
        let socket = "\(base)/n\(i)/run/corral/corral.sock"
        guard let bytes = try? ControlSocketClient.request(path: socket, line: JSONCoding.encode(request.control), timeoutSeconds: timeoutSeconds) else { return nil }
        return try? JSONCoding.decode(ControlResponse.self, from: bytes)
    }

    /// The guests node `i`'s own libvirtd runs (the hypervisor's truth, not Corral's); nil if
    /// libvirtd does not answer (e.g. the node is down) within 10 s (a hung libvirtd must not
    /// hang the caller: virsh itself waits forever).
    public func guests(_ i: Int) -> Set<String>? {
        let result = exec(i, ["timeout", "10", "virsh", "-c", "qemu:///system", "list", "--name"])
        guard result.status == 0 else { return nil }
        return Set(result.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    /// Guests per node, for every node whose libvirtd answers.
    public func placement() -> [Int: Set<String>] {
        var out: [Int: Set<String>] = [:]
        for i in 1...nodes { if let g = guests(i) { out[i] = g } }
        return out
    }

    /// Faults and repairs, as `Deploy/local-cluster` defines them.
    public func crash(_ i: Int) { script(["kill", "\(i)"]) }
    public func start(_ i: Int) { script(["start", "\(i)"]) }
    public func partition(_ i: Int) { script(["partition", "\(i)"]) }
    public func heal(_ i: Int) { script(["heal", "\(i)"]) }
    public func pauseAgent(_ i: Int) { script(["pause", "\(i)"]) }
    public func resumeAgent(_ i: Int) { script(["resume", "\(i)"]) }
    public func stopAgent(_ i: Int) { script(["stop-agent", "\(i)"]) }
    public func killCorosync(_ i: Int) { script(["kill-corosync", "\(i)"]) }
    public func flap(_ i: Int, ms: Int) { script(["flap", "\(i)", "\(ms)"]) }
    /// Caps node `i`'s link (e.g. "200mbit"), or removes the cap with "off".
    public func shape(_ i: Int, _ rate: String) { script(["shape", "\(i)", rate]) }

    /// A file of node `i`'s (e.g. "corrald.log", "watchdog.log").
    public func file(_ i: Int, _ name: String) -> String {
        (try? String(contentsOfFile: "\(base)/n\(i)/\(name)", encoding: .utf8)) ?? ""
    }

    // MARK: waiting

    /// Polls `condition` every `pollSeconds` for at most `seconds`.
    public func waitUntil(_ what: String, seconds: Double = 30, pollSeconds: Double = 0.25,
                          _ condition: () -> Bool) throws(ClusterError) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            Thread.sleep(forTimeInterval: pollSeconds)
        }
        throw ClusterError("timed out after \(seconds) s waiting until \(what)")
    }

    /// Waits until the given nodes report the same members, quorate, synced, one digest.
    @discardableResult
    public func waitForAgreement(_ nodes: [Int], members: Int, seconds: Double = 30) throws(ClusterError) -> StatusReport {
        var last: StatusReport?
        try waitUntil("nodes \(nodes) agree on \(members) members and one digest", seconds: seconds) {
            let reports = nodes.compactMap { status($0) }
            guard reports.count == nodes.count, reports.allSatisfy({ $0.quorate && !$0.syncing && $0.members.count == members }) else { return false }
            last = reports[0]
            return Set(reports.map(\.digest)).count == 1
        }
        return last!
    }
}

/// An operator request as sent over the control socket (`whatIf` plans only).
public struct OperatorRequestLine: Sendable {
    public var control: ControlRequest
    public init(_ request: CorralCore.OperatorRequest, whatIf: Bool = false) { control = .operate(request, whatIf: whatIf) }
}

public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ text: String) { description = text }
}
