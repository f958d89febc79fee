import CorralAgent
import Foundation
import Testing

/// Drives `Deploy/local-cluster` for a test: real Corosync nodes in network namespaces, each
/// with its own corrald. `withCluster` always tears the cluster down, also when the test fails.
struct LocalCluster {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let script = repository + "/Deploy/local-cluster"
    let nodes: Int

    /// Binaries of this build: $CORRAL_BIN, else the newest of .build/release and .build/debug.
    static var binaries: String {
        if let bin = ProcessInfo.processInfo.environment["CORRAL_BIN"] { return bin }
        let candidates = ["release", "debug"].map { repository + "/.build/" + $0 }
        func modified(_ dir: String) -> Date {
            (try? FileManager.default.attributesOfItem(atPath: dir + "/corrald")[.modificationDate] as? Date) ?? .distantPast
        }
        return candidates.max { modified($0) < modified($1) }!
    }

    static var canRun: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: binaries + "/corrald") }

    static func withCluster(nodes: Int, token: Int = 1000, _ body: (LocalCluster) throws -> Void) throws {
        _ = run([script, "down"])
        let up = run([script, "up", "--nodes", "\(nodes)", "--token", "\(token)"])
        defer { _ = run([script, "down"]) }
        try #require(up.status == 0, "local-cluster up failed: \(up.output)")
        let cluster = LocalCluster(nodes: nodes)
        try cluster.waitUntil("every agent answers and is quorate") { (1...nodes).allSatisfy { cluster.status($0)?.quorate == true } }
        try body(cluster)
    }

    // MARK: commands

    @discardableResult
    static func run(_ arguments: [String]) -> (status: Int32, output: String) {
        let result = CommandRunner.run(arguments, environment: ["CORRAL_BIN": binaries, "CORRAL_CLUSTER_DIR": "/run/corral-test-cluster"])
        return (result.status, result.output)
    }

    /// Runs `corral ARGS…` inside node `i`.
    @discardableResult
    func corral(_ i: Int, _ arguments: String...) -> (status: Int32, output: String) {
        Self.run([Self.script, "exec", "\(i)", Self.binaries + "/corral"] + arguments)
    }

    func status(_ i: Int) -> StatusReport? {
        let result = corral(i, "status", "--json")
        guard result.status == 0 else { return nil }
        return try? JSONCoding.decode(StatusReport.self, from: Array(result.output.utf8))
    }

    func kill(_ i: Int) { Self.run([Self.script, "kill", "\(i)"]) }
    func start(_ i: Int) { Self.run([Self.script, "start", "\(i)"]) }
    func partition(_ i: Int) { Self.run([Self.script, "partition", "\(i)"]) }
    func heal(_ i: Int) { Self.run([Self.script, "heal", "\(i)"]) }
    var nodeDirectory: String { "/run/corral-test-cluster" }

    // MARK: waiting

    /// Polls `condition` every 250 ms for at most `seconds`; fails the test with `what` on timeout.
    func waitUntil(_ what: String, seconds: Double = 30, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            Thread.sleep(forTimeInterval: 0.25)
        }
        Issue.record("timed out after \(seconds) s waiting until \(what)")
        throw ClusterTimeout()
    }

    /// Waits until the given nodes report the same members, quorate and the same digest.
    func waitForAgreement(_ nodes: [Int], members: Int, seconds: Double = 30) throws -> StatusReport {
        var last: StatusReport?
        try waitUntil("nodes \(nodes) agree on \(members) members and one digest", seconds: seconds) {
            let reports = nodes.compactMap(status)
            guard reports.count == nodes.count, reports.allSatisfy({ $0.quorate && !$0.syncing && $0.members.count == members }) else { return false }
            last = reports[0]
            return Set(reports.map(\.digest)).count == 1
        }
        return last!
    }
}

struct ClusterTimeout: Error {}
