import Foundation
import Glibc

/// A `StatusReport` in the Prometheus text exposition format (version 0.0.4), for
/// `corral metrics` and node-exporter's textfile collector. Units are Prometheus's base units:
/// bytes and seconds. Families without a sample are left out; everything else is printed in a
/// fixed order so the output of one report is always the same text.
public enum StatusMetrics {
    /// Node, VM and migration states, in the order they are printed; every one gets a sample
    /// (0 when none), so a state that empties shows 0 instead of vanishing. States the report
    /// has but these lists lack are appended in the order met.
    public static let nodeStates = ["up", "paused", "draining", "drained", "down", "fencing", "fenced"]
    public static let vmStates = ["stopped", "pending", "starting", "running", "migrating", "stopping", "awaiting-destination", "failed"]
    public static let migrationStates = ["queued", "running", "succeeded", "failed"]

    static let mebibyte = 1_048_576

    /// The exposition text for `report`; nil renders only `corral_up 0` (corrald unreachable).
    public static func render(_ report: StatusReport?) -> String {
        var out = Exposition()
        out.family("corral_up", "Whether corral metrics read corrald's status (1) or could not reach it (0).")
        out.sample("corral_up", [], report == nil ? 0 : 1)
        guard let r = report else { return out.text }

        out.family("corral_node_info", "The node that answered, with its Corosync node id.")
        out.sample("corral_node_info", [("node", r.node), ("node_id", "\(r.nodeID)")], 1)
        out.family("corral_quorate", "Whether this node's partition has quorum (1) or not (0).")
        out.sample("corral_quorate", [], r.quorate ? 1 : 0)
        out.family("corral_syncing", "Whether this node is in a state sync round (1); requests are refused meanwhile.")
        out.sample("corral_syncing", [], r.syncing ? 1 : 0)
        out.family("corral_members", "Members of Corral's CPG group in this node's view.")
        out.sample("corral_members", [], Double(r.members.count))
        if let coordinator = r.coordinator {
            out.family("corral_coordinator", "The coordinating node (only while quorate).")
            out.sample("corral_coordinator", [("node", coordinator)], 1)
        }
        out.family("corral_state_epoch", "Epoch of the replicated state.")
        out.sample("corral_state_epoch", [], Double(r.epoch))
        out.family("corral_state_version", "Version of the replicated state: commands applied in this epoch.")
        out.sample("corral_state_version", [], Double(r.version))
        if let lease = r.leaseRemainingMs {
            out.family("corral_lease_remaining_seconds", "This node's self-fence lease left when the status was taken.")
            out.sample("corral_lease_remaining_seconds", [], Double(lease) / 1000)
        }

        out.family("corral_nodes", "Registered nodes by state.")
        for (state, count) in counts(r.nodes.map(\.state), known: nodeStates) { out.sample("corral_nodes", [("state", state)], Double(count)) }
        out.family("corral_node_state", "Each node's state (1 for its current state).")
        for n in r.nodes { out.sample("corral_node_state", [("node", n.name), ("state", n.state)], 1) }
        out.family("corral_node_member", "Whether each node is in this node's membership (1) or not (0).")
        for n in r.nodes { out.sample("corral_node_member", [("node", n.name)], n.member ? 1 : 0) }
        out.family("corral_node_memory_bytes", "Memory each node offers to guests.")
        for n in r.nodes { out.sample("corral_node_memory_bytes", [("node", n.name)], Double(n.memoryMiB * mebibyte)) }
        out.family("corral_node_memory_used_bytes", "Memory of the VMs placed on each node.")
        for n in r.nodes { out.sample("corral_node_memory_used_bytes", [("node", n.name)], Double(n.usedMemoryMiB * mebibyte)) }
        out.family("corral_node_vms", "VMs placed on each node.")
        for n in r.nodes { out.sample("corral_node_vms", [("node", n.name)], Double(n.vms)) }
        out.family("corral_node_drain_failures", "VMs that stopped each node's drain (0 unless a drain stopped).")
        for n in r.nodes { out.sample("corral_node_drain_failures", [("node", n.name)], Double(n.drainFailures.count)) }

        out.family("corral_vms", "VMs by state.")
        for (state, count) in counts(r.vms.map(\.state), known: vmStates) { out.sample("corral_vms", [("state", state)], Double(count)) }

        out.family("corral_migrations", "Migration jobs by state, among the last 50 jobs the status carries.")
        for (state, count) in counts(r.migrations.map(\.state), known: migrationStates) { out.sample("corral_migrations", [("state", state)], Double(count)) }
        func labels(_ m: StatusReport.MigrationRow) -> [(String, String)] {
            [("id", "\(m.id)"), ("vm", m.vm), ("from", m.from), ("to", m.to), ("purpose", m.purpose)]
        }
        let active = r.migrations.filter { $0.state == "queued" || $0.state == "running" }
        let running = r.migrations.filter { $0.state == "running" }
        out.family("corral_migration_bandwidth_bytes_per_second", "Bandwidth cap the scheduler gave each queued or running migration (0 = uncapped).")
        for m in active { out.sample("corral_migration_bandwidth_bytes_per_second", labels(m), Double(m.bandwidthMiBps * mebibyte)) }
        out.family("corral_migration_total_bytes", "Guest memory each running migration sends in all, from the source's last report.")
        for m in running { if let v = m.totalMiB { out.sample("corral_migration_total_bytes", labels(m), Double(v * mebibyte)) } }
        out.family("corral_migration_remaining_bytes", "Memory each running migration still has to send, as libvirt estimates it now.")
        for m in running { if let v = m.remainingMiB { out.sample("corral_migration_remaining_bytes", labels(m), Double(v * mebibyte)) } }
        out.family("corral_migration_progress_ratio", "1 - remaining / total for each running migration.")
        for m in running { if let v = m.percent { out.sample("corral_migration_progress_ratio", labels(m), Double(v) / 100) } }
        out.family("corral_migration_rate_bytes_per_second", "Memory transfer rate of each running migration now.")
        for m in running { if let v = m.rateMiBps { out.sample("corral_migration_rate_bytes_per_second", labels(m), Double(v * mebibyte)) } }
        out.family("corral_migration_dirty_rate_bytes_per_second", "Rate at which each migrating guest dirties its memory.")
        for m in running { if let v = m.dirtyRateMiBps { out.sample("corral_migration_dirty_rate_bytes_per_second", labels(m), Double(v * mebibyte)) } }
        out.family("corral_migration_eta_seconds", "Remaining / rate for each running migration: a floor.")
        for m in running { if let v = m.etaSeconds { out.sample("corral_migration_eta_seconds", labels(m), Double(v)) } }
        out.family("corral_migration_downtime_seconds", "How long each succeeded migration paused its guest at switchover.")
        for m in r.migrations where m.state == "succeeded" { out.sample("corral_migration_downtime_seconds", labels(m), Double(m.downtimeMs) / 1000) }
        if let events = r.eventCounts {
            out.family("corral_events_total", "History lines this node's agent recorded since it started (corral events), by kind: fencing (a node fenced), failover (a VM placed away from a lost node), migration_failed, refusal.", type: "counter")
            for kind in EventJournal.countedKinds { out.sample("corral_events_total", [("kind", kind)], Double(events[kind] ?? 0)) }
        }
        return out.text
    }

    /// Counts per state: the known states in order, then any others in the order met.
    static func counts(_ states: [String], known: [String]) -> [(String, Int)] {
        var order = known
        for s in states where !order.contains(s) { order.append(s) }
        return order.map { state in (state, states.filter { $0 == state }.count) }
    }

    /// Writes `text` to `path` for node-exporter's textfile collector: a temporary file in the
    /// same directory (a name the collector ignores, not ending in .prom), fsync, mode 0644,
    /// then rename over `path`, so a scrape never sees half a file.
    public static func writeAtomically(_ text: String, to path: String) throws(MetricsFileError) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = (directory == "/" ? "" : directory) + "/.\(base).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MetricsFileError(path: temporary, operation: "create", errno: errno) }
        var failure: MetricsFileError?
        do { try POSIXSupport.writeAll(Array(text.utf8), to: fd) } catch { failure = MetricsFileError(path: temporary, operation: "write", errno: error.code) }
        if failure == nil, fchmod(fd, 0o644) != 0 { failure = MetricsFileError(path: temporary, operation: "chmod", errno: errno) }
        if failure == nil, fsync(fd) != 0 { failure = MetricsFileError(path: temporary, operation: "fsync", errno: errno) }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = MetricsFileError(path: path, operation: "rename \(temporary) to", errno: errno) }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }

    public struct MetricsFileError: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var operation: String
        public var errno: Int32
        public var description: String { "cannot \(operation) \(path): \(POSIXSupport.describe(errno: errno))" }
    }
}

/// Builds exposition text: `# HELP` and `# TYPE` once per family, printed with its first sample.
struct Exposition {
    private(set) var text = ""
    private var pending: (name: String, help: String)?

    private var pendingType = "gauge"

    mutating func family(_ name: String, _ help: String, type: String = "gauge") {
        pending = (name, help)
        pendingType = type
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        if let family = pending, family.name == name {
            text += "# HELP \(name) \(Self.escapeHelp(family.help))\n# TYPE \(name) \(pendingType)\n"
            pending = nil
        }
        text += name
        if !labels.isEmpty { text += "{" + labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}" }
        text += " " + Self.format(value) + "\n"
    }

    /// Label values escape backslash, double quote and line feed.
    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// HELP text escapes backslash and line feed.
    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Whole numbers without a fraction; others in Swift's shortest round-trip form.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
