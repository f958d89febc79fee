import Foundation
import Glibc

/// One screen of `corral monitor`, in the spirit of `crm_mon`: the cluster line, the nodes,
/// the VMs (those needing attention first), the migrations under way, and what needs an
/// operator. Plain text, no escape sequences: the CLI clears the screen between frames.
public enum StatusFrame {
    /// At most this many VM rows; the rest are summed up in one line.
    public static let vmRowLimit = 40

    public static func render(_ r: StatusReport, at time: Date, intervalSeconds: Int?) -> String {
        var lines: [String] = []
        let refresh = intervalSeconds.map { "  (every \($0) s, Ctrl-C to quit)" } ?? ""
        lines.append("Corral on \(r.node) (id \(r.nodeID))  \(utc(time))\(refresh)")
        var cluster = r.quorate ? "quorate" : "NOT QUORATE: requests are refused, nothing is placed"
        if r.syncing { cluster += ", state sync in progress" }
        lines.append("Cluster: \(cluster); coordinator \(r.coordinator ?? "none")")
        lines.append("Members (\(r.members.count)): \(r.members.isEmpty ? "none" : r.members.joined(separator: " "))  epoch \(r.epoch) version \(r.version) digest \(r.digest)")
        if let lease = r.leaseRemainingMs { lines.append("Lease: \(lease) ms left on this node") }
        lines.append("")

        lines.append("Nodes: " + summary(r.nodes.map(\.state), order: StatusMetrics.nodeStates))
        lines += table(["NODE", "STATE", "MEMBER", "MEMORY USED", "VMS"], r.nodes.map {
            [$0.name, $0.state, $0.member ? "yes" : "no", "\($0.usedMemoryMiB)/\($0.memoryMiB) MiB", "\($0.vms)"]
        }).map { "  " + $0 }
        lines.append("")

        lines.append("VMs: " + summary(r.vms.map(\.state), order: StatusMetrics.vmStates))
        let attentionFirst = r.vms.filter { $0.state != "running" } + r.vms.filter { $0.state == "running" }
        let shown = attentionFirst.prefix(vmRowLimit)
        if !shown.isEmpty {
            lines += table(["VM", "NODE", "STATE", "MEMORY", "PRIORITY", "REASON"], shown.map {
                [$0.name, $0.node.isEmpty ? "-" : $0.node, $0.state, "\($0.memoryMiB) MiB", $0.priority, $0.reason]
            }).map { "  " + $0 }
            if attentionFirst.count > shown.count { lines.append("  … and \(attentionFirst.count - shown.count) more (corral vm list)") }
        }
        lines.append("")

        let active = r.migrations.filter { $0.state == "running" || $0.state == "queued" }
        lines.append("Migrations: " + summary(active.map(\.state), order: ["running", "queued"]))
        for m in active {
            var text = "  \(m.vm) \(m.from)→\(m.to) \(m.purpose) \(m.state)"
            if let percent = m.percent { text += " \(percent)%" }
            if let rate = m.rateMiBps { text += " \(rate) MiB/s" }
            if let eta = m.etaSeconds { text += " eta \(eta) s" }
            text += m.bandwidthMiBps == 0 ? " uncapped" : " cap \(m.bandwidthMiBps) MiB/s"
            lines.append(text)
        }

        var attention: [String] = []
        for n in r.nodes where !n.drainFailures.isEmpty {
            attention.append("drain of \(n.name) stopped: " + n.drainFailures.joined(separator: "; "))
        }
        for n in r.nodes where n.state == "fencing" || n.state == "down" { attention.append("node \(n.name) is \(n.state)") }
        for v in r.vms where v.state == "failed" || v.state == "pending" || v.state == "awaiting-destination" {
            attention.append("VM \(v.name) is \(v.state)" + (v.reason.isEmpty ? "" : ": \(v.reason)"))
        }
        for m in r.migrations where m.state == "failed" { attention.append("migration \(m.id) of \(m.vm) \(m.from)→\(m.to) failed: \(m.failure)") }
        if !attention.isEmpty {
            lines.append("")
            lines.append("Needs attention:")
            lines += attention.map { "  " + $0 }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `3 running, 1 pending`: the counts that are not zero, in `order`, then any other state.
    static func summary(_ states: [String], order: [String]) -> String {
        let parts = StatusMetrics.counts(states, known: order).filter { $0.1 > 0 }.map { "\($0.1) \($0.0)" }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    /// Columns padded to their widest cell, trailing blanks trimmed.
    public static func table(_ header: [String], _ rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        return all.map { row in
            var line = row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }
    }

    static func utc(_ time: Date) -> String {
        var seconds = time_t(time.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
