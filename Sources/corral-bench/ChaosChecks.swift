import CorralAgent
import CorralCore
import CorralTestbed
import Foundation

/// One guest of the campaign, as added to the cluster.
struct ChaosGuest: Sendable {
    var spec: VMSpec
    var name: String { spec.name }
}

/// The post-heal check: every node agrees, every node is up, every guest is where the state
/// says and nowhere else (hypervisor truth), no transition or migration is left, and disk
/// leases sit with the node that runs the guest.
struct ChaosCheck: Sendable {
    var passed = false
    /// Why it did not pass (empty when passed).
    var problems: [String] = []
    /// All nodes answer, are quorate, not syncing, have every member and one digest.
    var agreed = false
    /// The agreed report (or the first that answered).
    var report: StatusReport?
    /// HA guests meant to run that run nowhere, with their state row.
    var notRunning: [String] = []
    /// Guests pending, with their reason.
    var pending: [String] = []
    /// Guests in state failed, with their reason.
    var failed: [String] = []
    /// Guests the state has stopped although nobody stopped them (non-HA after a failure).
    var stoppedNonHA: [String] = []
    /// Nodes whose admin state is not active (draining, drained, paused).
    var notActive: [String] = []
    /// Disk leases not held (only) by the guest's node, in the state or in lockd.
    var leaseMismatches: [String] = []
    /// Running guests by node, from the hypervisors.
    var placement: [Int: [String]] = [:]
}

enum ChaosChecker {
    static func check(_ cluster: LocalCluster, _ hypervisors: ChaosHypervisors, _ leases: ChaosLeases, guests: [ChaosGuest]) -> ChaosCheck {
        var c = ChaosCheck()
        let n = cluster.nodes
        let lock = NSLock()
        nonisolated(unsafe) var reports: [Int: StatusReport] = [:]
        ChaosThreads.parallel(n) { k in
            if let r = cluster.status(k + 1, timeoutSeconds: 3) { lock.withLock { reports[k + 1] = r } }
        }
        for i in 1...n {
            guard let r = reports[i] else { c.problems.append("node\(i): no status"); continue }
            if !r.quorate { c.problems.append("node\(i): not quorate") }
            if r.syncing { c.problems.append("node\(i): syncing") }
            if r.members.count != n { c.problems.append("node\(i): members \(r.members)") }
        }
        let digests = Set(reports.values.map(\.digest))
        if digests.count > 1 {
            c.problems.append("digests differ: " + (1...n).compactMap { i in reports[i].map { "node\(i) \($0.digest.prefix(12)) v\($0.version)" } }.joined(separator: ", "))
        }
        c.agreed = c.problems.isEmpty
        guard let report = (1...n).lazy.compactMap({ reports[$0] }).first else { return c }
        c.report = report

        for node in report.nodes where node.state != "up" {
            c.problems.append("\(node.name) is \(node.state)")
            if ["paused", "draining", "drained"].contains(node.state) { c.notActive.append(node.name) }
        }
        let snapshot = hypervisors.snapshot().views
        for i in 1...n where snapshot[i] == nil || snapshot[i]! == nil { c.problems.append("node\(i): libvirtd does not answer") }
        let running = ChaosHypervisors.running(snapshot)
        for (name, nodes) in running { for node in nodes { c.placement[node, default: []].append(name) } }
        let nodeIDs = Dictionary(uniqueKeysWithValues: report.nodes.map { ($0.name, $0.id) })
        let rows = Dictionary(report.vms.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let known = Set(guests.map(\.name))
        for name in running.keys.sorted() where !known.contains(name) {
            c.problems.append("\(name) runs on nodes \(running[name]!) but is not a campaign guest")
        }
        let state = leases.state(Int(report.nodeID)) ?? leases.state(1)
        let lockd = leases.lockdHolders()
        for guest in guests {
            let on = running[guest.name] ?? []
            guard let row = rows[guest.name] else {
                c.problems.append("\(guest.name) is missing from the state")
                c.notRunning.append("\(guest.name) (missing from the state)")
                continue
            }
            let other = ChaosHypervisors.states(snapshot, guest.name)
            switch row.state {
            case "running":
                let expected = Int(row.node.dropFirst(4)) ?? -1
                if on != [expected] {
                    c.problems.append("\(guest.name): state says running on \(row.node), hypervisors run it on \(on.map { "node\($0)" })\(other)")
                    if on.isEmpty { c.notRunning.append("\(guest.name) (state: running on \(row.node))") }
                }
                if let nodeID = nodeIDs[row.node] {
                    for disk in guest.spec.disks {
                        let holders = state?.leases[disk]?.holders ?? []
                        if holders != [nodeID] { c.leaseMismatches.append("\(guest.name): Corral lease on \(disk) held by \(holders), guest runs on \(row.node) (id \(nodeID))") }
                        if (lockd[disk] ?? []) != [expected] { c.leaseMismatches.append("\(guest.name): lockd lease on \(disk) locked from nodes \(lockd[disk] ?? []), guest runs on \(row.node)") }
                    }
                }
            case "stopped", "failed":
                if !on.isEmpty { c.problems.append("\(guest.name) is \(row.state) in the state but runs on \(on.map { "node\($0)" })") }
                if row.state == "failed" {
                    c.failed.append("\(guest.name): \(row.reason)")
                } else if guest.spec.highlyAvailable {
                    c.problems.append("\(guest.name) (HA) is stopped: \(row.reason)")
                    c.notRunning.append("\(guest.name) (HA, stopped: \(row.reason))")
                } else {
                    c.stoppedNonHA.append(guest.name)
                    c.problems.append("\(guest.name) (not HA) is stopped: \(row.reason)")
                }
            default:
                c.problems.append("\(guest.name) is \(row.state) on \(row.node)\(row.reason.isEmpty ? "" : " (\(row.reason))"); hypervisors run it on \(on.map { "node\($0)" })\(other)")
                if row.state == "pending" { c.pending.append("\(guest.name): \(row.reason)") }
                if on.isEmpty && row.state != "starting" { c.notRunning.append("\(guest.name) (state: \(row.state) \(row.reason))") }
            }
        }
        for job in report.migrations where job.state == "queued" || job.state == "running" {
            c.problems.append("migration \(job.id) of \(job.vm) \(job.from)→\(job.to) is \(job.state)")
        }
        c.problems += c.leaseMismatches
        c.passed = c.problems.isEmpty && c.agreed
        return c
    }
}

extension ChaosHypervisors {
    /// Non-running states of a domain on any node, for problem lines (" [node2: paused]").
    static func states(_ views: [Int: [String: String]?], _ name: String) -> String {
        let parts = views.keys.sorted().compactMap { node -> String? in
            guard let state = views[node]??[name], state != "running" else { return nil }
            return "node\(node): \(state)"
        }
        return parts.isEmpty ? "" : " [\(parts.joined(separator: ", "))]"
    }
}
