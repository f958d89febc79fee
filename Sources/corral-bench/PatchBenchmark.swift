import CorralAgent
import CorralCore
import CorralTestbed
import Foundation

/// `corral-bench patch`: one patch run over a real 3-node libvirt cluster (`--guests` per
/// node, `--hook-seconds` of `sleep` as the patch), against the sum of its parts: the run's
/// wall time (request to end, seen from outside) versus the sum of its drains and hook times
/// (each drain from the run's timeline, each hook as the node's shell timed it); plus the
/// guests' total downtime (libvirt's job stats, drains and failbacks).
enum PatchBenchmark {
    struct Figures: Encodable {
        var nodes: Int
        var guestsPerNode: Int
        var hookSeconds: Int
        var outcome: String
        var wallMs: Int
        var drainMs: [Int]
        var hookMs: [Int]
        var failbackMs: [Int]
        var partsMs: Int
        /// (wall − drains − hooks) / (drains + hooks). Failbacks overlap the next node, all but
        /// the last one, which the run waits for.
        var overhead: Double
        var migrations: Int
        var totalDowntimeMs: Int
    }

    static func run(_ options: BenchOptions, json: Bool) {
        let guests = options.int("guests", default: 2)
        let memory = options.int("memory", default: 64, min: 16)
        let hookSeconds = options.int("hook-seconds", default: 3)
        note("bringing up a 3-node libvirt cluster (id \(RealCluster.id), \(RealCluster.base))")
        let cluster: LocalCluster
        do { cluster = try RealCluster.up(nodes: 3, fenceAgent: false, memoryMiB: max(1024, 3 * guests * memory + 256)) } catch {
            print("cannot bring up the cluster: \(error)")
            exit(1)
        }
        do {
            let figures = try measure(cluster, guests: guests, memory: memory, hookSeconds: hookSeconds)
            RealCluster.down(cluster, saveLogs: options.value("save-logs"), label: "patch")
            if json { print(String(decoding: JSONCoding.encode(figures), as: UTF8.self)) } else { show(figures) }
        } catch {
            print("patch bench failed: \(error)")
            print(RealCluster.diagnostics(cluster))
            RealCluster.down(cluster, saveLogs: options.value("save-logs"), label: "patch")
            exit(1)
        }
    }

    static func measure(_ cluster: LocalCluster, guests: Int, memory: Int, hookSeconds: Int) throws(ClusterError) -> Figures {
        let names = (1...3).flatMap { node in (1...guests).map { ("pb\(node)g\($0)", node) } }
        for (name, node) in names {
            try RealCluster.operate(cluster, 1, .addVM(VMSpec(name: name, memoryMiB: memory, preferredOwners: ["node\(node)"]), start: true))
        }
        try cluster.waitUntil("\(names.count) guests running", seconds: 180, pollSeconds: 0.3) {
            guard let r = cluster.status(1) else { return false }
            return names.allSatisfy { g in r.vms.contains { $0.name == g.0 && $0.state == "running" && $0.node == "node\(g.1)" } }
        }
        try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
        note("\(names.count) guests running; starting the patch run (hook: sleep \(hookSeconds))")
        let started = Date()
        try RealCluster.operate(cluster, 1, .startPatchRun(PatchRequest(PatchOptions(hook: "sleep \(hookSeconds)"), order: ["node1", "node2", "node3"])))
        var last: PatchRun?
        try cluster.waitUntil("the patch run ends", seconds: 600, pollSeconds: 0.1) {
            guard let run = cluster.status(1)?.patchRun else { return false }
            last = run
            return run.state != .running
        }
        let wallMs = Int(Date().timeIntervalSince(started) * 1000)
        guard let run = last else { throw ClusterError("no patch run in the status") }
        func span(_ progress: PatchNodeProgress, from: PatchStep, to: PatchStep) -> Int {
            guard let a = progress.timeline.last(where: { $0.step == from }), let b = progress.timeline.last(where: { $0.step == to }) else { return 0 }
            return Int(b.at - a.at)
        }
        let drains = run.nodes.map { span($0, from: .draining, to: .hook) }
        let hooks = run.nodes.map { $0.hooks.filter { $0.phase == .hook }.last?.result.durationMs ?? 0 }
        let failbacks = run.nodes.map { span($0, from: .resuming, to: .done) }
        let parts = drains.reduce(0, +) + hooks.reduce(0, +)
        let moved = run.nodes.flatMap { $0.moved + $0.returned }
        return Figures(nodes: 3, guestsPerNode: guests, hookSeconds: hookSeconds, outcome: "\(run.state.rawValue): \(run.outcome)",
                       wallMs: wallMs, drainMs: drains, hookMs: hooks, failbackMs: failbacks, partsMs: parts,
                       overhead: Double(wallMs - parts) / Double(max(1, parts)),
                       migrations: moved.count, totalDowntimeMs: moved.reduce(0) { $0 + $1.downtimeMs })
    }

    static func show(_ f: Figures) {
        print("patch run over \(f.nodes) nodes, \(f.guestsPerNode) guests per node, hook sleep \(f.hookSeconds): \(f.outcome)")
        print("  wall time                 \(f.wallMs) ms")
        print("  drains                    \(f.drainMs.map { "\($0)" }.joined(separator: " + ")) ms")
        print("  hooks                     \(f.hookMs.map { "\($0)" }.joined(separator: " + ")) ms")
        print("  failbacks                 \(f.failbackMs.map { "\($0)" }.joined(separator: " + ")) ms (overlapping the next node)")
        print(String(format: "  overhead vs drains+hooks  %.1f %% (target ≤ 10 %%)", 100 * f.overhead))
        print("  guests' total downtime    \(f.totalDowntimeMs) ms over \(f.migrations) migrations")
    }

    static func note(_ text: String) { FileHandle.standardError.write(Data("patch: \(text)\n".utf8)) }
}
