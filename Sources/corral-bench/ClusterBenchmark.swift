import CorralAgent
import Foundation

/// Benchmarks on a real local cluster (Deploy/local-cluster; needs root and built binaries):
/// commands per second through CPG, state sync of a joining node with 8,000 VMs, time from a
/// kill to the survivors' agreement, and corrald's memory with 8,000 VMs in the state.
enum ClusterBenchmark {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let script = repository + "/Deploy/local-cluster"
    static let base = "/run/corral-bench-cluster"
    static var binaries: String { URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path }

    static func run(json: Bool) {
        shell([script, "down"])
        guard shell([script, "up", "--nodes", "3", "--token", "1000"]).status == 0 else {
            print("cannot bring up the local cluster; see \(base)")
            return
        }
        defer { shell([script, "down"]) }
        waitUntil(30) { (1...3).allSatisfy { status($0)?.quorate == true } }
        let token = tokenTimeout()
        let throughput = commandsPerSecond()
        let fill = fillVMs(8_000)
        let rss = residentMiB(node: 1)
        let sync = joinSyncMs(node: 3)
        let agree = (1...3).map { _ in killToAgreementMs() }.sorted()
        if json {
            print("{\"commandsPerSecond\":\(Int(throughput)),\"vmsInState\":\(fill),\"syncJoinMs\":\(sync.map { "\($0)" } ?? "null"),"
                + "\"killToAgreementMs\":[\(agree.map { "\($0)" }.joined(separator: ","))],\"tokenTimeoutMs\":\(token),\"corraldRssMiB\":\(fmt(rss))}")
        } else {
            print("real 3-node cluster (Corosync knet, token 1000 ms; effective token \(token) ms)")
            print("  commands applied through CPG      \(Int(throughput)) /s (24 concurrent clients, 3 nodes)")
            print("  state sync of a joining node      \(sync.map { "\($0) ms" } ?? "n/a") with \(fill) VMs in the state")
            print("  kill → survivors agree            \(agree.map { "\($0) ms" }.joined(separator: ", ")) (effective token timeout \(token) ms)")
            print("  corrald resident memory           \(fmt(rss)) MiB with \(fill) VMs in the state")
        }
    }

    // MARK: measurements

    /// 24 clients (8 per node) each adding VMs as fast as their requests are applied.
    static func commandsPerSecond() -> Double {
        let perClient = 60
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: 24) { c in
            for k in 0..<perClient {
                _ = request(node: c % 3 + 1, .operate(.addVM(.init(name: "tp\(c)-\(k)", memoryMiB: 16, highlyAvailable: false), start: false), whatIf: false))
            }
        }
        return Double(24 * perClient) / Date().timeIntervalSince(start)
    }

    /// Adds stopped VMs until the state holds `count`, 16 clients at a time.
    static func fillVMs(_ count: Int) -> Int {
        let have = status(1)?.vms.count ?? 0
        let missing = max(0, count - have)
        DispatchQueue.concurrentPerform(iterations: 16) { c in
            for k in stride(from: c, to: missing, by: 16) {
                _ = request(node: k % 3 + 1, .operate(.addVM(.init(name: "fill\(k)", memoryMiB: 16, highlyAvailable: false), start: false), whatIf: false))
            }
        }
        return status(1)?.vms.count ?? 0
    }

    /// Restarts a node with an empty state directory and reads its own sync time from its log.
    static func joinSyncMs(node: Int) -> Int? {
        shell([script, "kill", "\(node)"])
        waitUntil(20) { status(1)?.members.count == 2 }
        try? FileManager.default.removeItem(atPath: "\(base)/n\(node)/state")
        let log = "\(base)/n\(node)/corrald.log"
        try? FileManager.default.removeItem(atPath: log)
        shell([script, "start", "\(node)"])
        waitUntil(60) { status(node)?.digest == status(1)?.digest && status(node)?.quorate == true }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").last { $0.contains("state sync done in") && !$0.contains(", 0 VMs") }
        return line.flatMap { $0.components(separatedBy: "state sync done in ").last?.split(separator: " ").first }.flatMap { Int($0) }
    }

    /// Kills node 3 and measures until nodes 1 and 2 both report two members and one digest.
    static func killToAgreementMs() -> Int {
        let start = Date()
        shell([script, "kill", "3"])
        waitUntil(30) {
            guard let a = status(1), let b = status(2) else { return false }
            return a.members.count == 2 && b.members.count == 2 && !a.syncing && !b.syncing && a.digest == b.digest
        }
        let ms = Int(Date().timeIntervalSince(start) * 1000)
        shell([script, "start", "3"])
        waitUntil(60) { status(3)?.members.count == 3 && status(3)?.syncing == false && status(1)?.members.count == 3 }
        return ms
    }

    static func residentMiB(node: Int) -> Double {
        guard let pid = try? String(contentsOfFile: "\(base)/n\(node)/corrald.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    static func tokenTimeout() -> String {
        let out = shell([script, "exec", "1", "corosync-cmapctl", "-g", "runtime.config.totem.token"]).output
        return out.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
    }

    // MARK: plumbing

    /// The node's control socket, reached from outside through its run directory.
    static func request(node: Int, _ request: ControlRequest) -> ControlResponse? {
        let socket = "\(base)/n\(node)/run/corral/corral.sock"
        guard let bytes = try? ControlSocketClient.request(path: socket, line: JSONCoding.encode(request), timeoutSeconds: 60) else { return nil }
        return try? JSONCoding.decode(ControlResponse.self, from: bytes)
    }

    static func status(_ node: Int) -> StatusReport? {
        if case let .status(report)? = request(node: node, .status) { return report }
        return nil
    }

    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && !condition() { Thread.sleep(forTimeInterval: 0.05) }
    }

    @discardableResult
    static func shell(_ arguments: [String]) -> (status: Int32, output: String) {
        let result = CommandRunner.run(arguments, environment: ["CORRAL_BIN": binaries, "CORRAL_CLUSTER_DIR": base])
        return (result.status, result.output)
    }
}
