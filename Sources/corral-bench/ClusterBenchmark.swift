import CorralAgent
import CorralTestbed
import Foundation

/// Benchmarks on a real local cluster (Deploy/local-cluster through CorralTestbed.LocalCluster;
/// needs root and built binaries): commands per second through CPG, state sync of a joining node
/// with 8,000 VMs, time from a kill to the survivors' agreement, and corrald's memory with 8,000
/// VMs in the state.
enum ClusterBenchmark {
    /// CORRAL_CLUSTER_ID (default 0) in /run/corral-bench-cluster.
    static let cluster = LocalCluster(id: RealCluster.id, base: "/run/corral-bench-cluster", nodes: 3)

    static func run(json: Bool) {
        Teardown.watch(cluster)
        let live: LocalCluster
        do {
            live = try LocalCluster.up(id: cluster.id, base: cluster.base, nodes: 3, token: 1000)
        } catch {
            print("cannot bring up the local cluster; see \(cluster.base)")
            return
        }
        defer {
            live.down()
            Teardown.watch(nil)
        }
        let token = RealCluster.token(live, 1)
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
                _ = cluster.request(c % 3 + 1, OperatorRequestLine(.addVM(.init(name: "tp\(c)-\(k)", memoryMiB: 16, highlyAvailable: false), start: false)))
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
                _ = cluster.request(k % 3 + 1, OperatorRequestLine(.addVM(.init(name: "fill\(k)", memoryMiB: 16, highlyAvailable: false), start: false)))
            }
        }
        return status(1)?.vms.count ?? 0
    }

    /// Restarts a node with an empty state directory and reads its own sync time from its log.
    static func joinSyncMs(node: Int) -> Int? {
        cluster.crash(node)
        waitUntil(20) { status(1)?.members.count == 2 }
        try? FileManager.default.removeItem(atPath: "\(cluster.base)/n\(node)/state")
        try? FileManager.default.removeItem(atPath: "\(cluster.base)/n\(node)/corrald.log")
        cluster.start(node)
        waitUntil(60) { status(node)?.digest == status(1)?.digest && status(node)?.quorate == true }
        let line = cluster.file(node, "corrald.log").split(separator: "\n").last { $0.contains("state sync done in") && !$0.contains(", 0 VMs") }
        return line.flatMap { $0.components(separatedBy: "state sync done in ").last?.split(separator: " ").first }.flatMap { Int($0) }
    }

    /// Kills node 3 and measures until nodes 1 and 2 both report two members and one digest.
    static func killToAgreementMs() -> Int {
        let start = Date()
        cluster.crash(3)
        waitUntil(30) {
            guard let a = status(1), let b = status(2) else { return false }
            return a.members.count == 2 && b.members.count == 2 && !a.syncing && !b.syncing && a.digest == b.digest
        }
        let ms = Int(Date().timeIntervalSince(start) * 1000)
        cluster.start(3)
        waitUntil(60) { status(3)?.members.count == 3 && status(3)?.syncing == false && status(1)?.members.count == 3 }
        return ms
    }

    static func residentMiB(node: Int) -> Double {
        let pid = cluster.file(node, "corrald.pid").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !pid.isEmpty, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    /// A node's status with the 60 s timeout the benchmark always used (a status with 8,000 VMs
    /// is large; LocalCluster's default of 10 s is too short on a loaded machine).
    static func status(_ i: Int) -> StatusReport? { cluster.status(i, timeoutSeconds: 60) }

    /// Waits as before the port: polls every 50 ms and goes on (without failing) after `seconds`.
    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) {
        try? cluster.waitUntil("condition", seconds: seconds, pollSeconds: 0.05, condition)
    }
}
