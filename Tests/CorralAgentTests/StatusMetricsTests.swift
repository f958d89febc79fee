@testable import CorralAgent
import Foundation
import Glibc
import Testing

/// A hand-made status (three nodes, three VMs, four migrations in every state) rendered as
/// Prometheus exposition text and as a monitor frame, compared with the exact expected text.
@Suite struct StatusMetricsTests {
    static let oddVM = "odd\"vm\\\n"

    static func report() throws -> StatusReport {
        var r = try JSONDecoder().decode(StatusReport.self, from: Data("""
        {"node":"kvm1","nodeID":1,"quorate":true,"syncing":false,"members":["kvm1","kvm2"],"coordinator":"kvm1",
         "epoch":3,"version":41,"digest":"ab12","nodes":[],"vms":[],"migrations":[]}
        """.utf8))
        r.leaseRemainingMs = 4250
        r.eventCounts = ["fencing": 1, "failover": 2]
        r.nodes = [
            .init(id: 1, name: "kvm1", state: "up", memoryMiB: 65536, usedMemoryMiB: 6144, vms: 1, member: true, drainFailures: []),
            .init(id: 2, name: "kvm2", state: "draining", memoryMiB: 32768, usedMemoryMiB: 2048, vms: 1, member: true,
                  drainFailures: ["cache: no node has 8192 MiB free"]),
            .init(id: 3, name: "kvm3", state: "fenced", memoryMiB: 16384, usedMemoryMiB: 0, vms: 0, member: false, drainFailures: []),
        ]
        r.vms = [
            .init(name: "cache", node: "", state: "pending", memoryMiB: 8192, priority: "low", highlyAvailable: true, reason: "no node has 8192 MiB free"),
            .init(name: "db", node: "kvm1", state: "running", memoryMiB: 4096, priority: "high", highlyAvailable: true, reason: ""),
            .init(name: oddVM, node: "kvm2", state: "migrating", memoryMiB: 2048, priority: "medium", highlyAvailable: true, reason: ""),
        ]
        r.migrations = [
            .init(id: 5, vm: "db", from: "kvm1", to: "kvm3", purpose: "failback", state: "failed", bandwidthMiBps: 0, percent: nil,
                  remainingMiB: nil, rateMiBps: nil, dirtyRateMiBps: nil, etaSeconds: nil, downtimeMs: 0, failure: "destination fenced"),
            .init(id: 6, vm: "db", from: "kvm2", to: "kvm1", purpose: "move", state: "succeeded", bandwidthMiBps: 0, percent: 100,
                  remainingMiB: 0, rateMiBps: 0, dirtyRateMiBps: 0, etaSeconds: nil, downtimeMs: 85, failure: ""),
            .init(id: 7, vm: oddVM, from: "kvm2", to: "kvm1", purpose: "drain", state: "running", bandwidthMiBps: 100, percent: 42,
                  remainingMiB: 1188, rateMiBps: 110, dirtyRateMiBps: 12, etaSeconds: 11, downtimeMs: 0, failure: "", totalMiB: 2048),
            .init(id: 8, vm: "cache", from: "kvm2", to: "kvm1", purpose: "drain", state: "queued", bandwidthMiBps: 50, percent: nil,
                  remainingMiB: nil, rateMiBps: nil, dirtyRateMiBps: nil, etaSeconds: nil, downtimeMs: 0, failure: ""),
        ]
        return r
    }

    static let expected = #"""
    # HELP corral_up Whether corral metrics read corrald's status (1) or could not reach it (0).
    # TYPE corral_up gauge
    corral_up 1
    # HELP corral_node_info The node that answered, with its Corosync node id.
    # TYPE corral_node_info gauge
    corral_node_info{node="kvm1",node_id="1"} 1
    # HELP corral_quorate Whether this node's partition has quorum (1) or not (0).
    # TYPE corral_quorate gauge
    corral_quorate 1
    # HELP corral_syncing Whether this node is in a state sync round (1); requests are refused meanwhile.
    # TYPE corral_syncing gauge
    corral_syncing 0
    # HELP corral_members Members of Corral's CPG group in this node's view.
    # TYPE corral_members gauge
    corral_members 2
    # HELP corral_coordinator The coordinating node (only while quorate).
    # TYPE corral_coordinator gauge
    corral_coordinator{node="kvm1"} 1
    # HELP corral_state_epoch Epoch of the replicated state.
    # TYPE corral_state_epoch gauge
    corral_state_epoch 3
    # HELP corral_state_version Version of the replicated state: commands applied in this epoch.
    # TYPE corral_state_version gauge
    corral_state_version 41
    # HELP corral_lease_remaining_seconds This node's self-fence lease left when the status was taken.
    # TYPE corral_lease_remaining_seconds gauge
    corral_lease_remaining_seconds 4.25
    # HELP corral_nodes Registered nodes by state.
    # TYPE corral_nodes gauge
    corral_nodes{state="up"} 1
    corral_nodes{state="paused"} 0
    corral_nodes{state="draining"} 1
    corral_nodes{state="drained"} 0
    corral_nodes{state="down"} 0
    corral_nodes{state="fencing"} 0
    corral_nodes{state="fenced"} 1
    # HELP corral_node_state Each node's state (1 for its current state).
    # TYPE corral_node_state gauge
    corral_node_state{node="kvm1",state="up"} 1
    corral_node_state{node="kvm2",state="draining"} 1
    corral_node_state{node="kvm3",state="fenced"} 1
    # HELP corral_node_member Whether each node is in this node's membership (1) or not (0).
    # TYPE corral_node_member gauge
    corral_node_member{node="kvm1"} 1
    corral_node_member{node="kvm2"} 1
    corral_node_member{node="kvm3"} 0
    # HELP corral_node_memory_bytes Memory each node offers to guests.
    # TYPE corral_node_memory_bytes gauge
    corral_node_memory_bytes{node="kvm1"} 68719476736
    corral_node_memory_bytes{node="kvm2"} 34359738368
    corral_node_memory_bytes{node="kvm3"} 17179869184
    # HELP corral_node_memory_used_bytes Memory of the VMs placed on each node.
    # TYPE corral_node_memory_used_bytes gauge
    corral_node_memory_used_bytes{node="kvm1"} 6442450944
    corral_node_memory_used_bytes{node="kvm2"} 2147483648
    corral_node_memory_used_bytes{node="kvm3"} 0
    # HELP corral_node_vms VMs placed on each node.
    # TYPE corral_node_vms gauge
    corral_node_vms{node="kvm1"} 1
    corral_node_vms{node="kvm2"} 1
    corral_node_vms{node="kvm3"} 0
    # HELP corral_node_drain_failures VMs that stopped each node's drain (0 unless a drain stopped).
    # TYPE corral_node_drain_failures gauge
    corral_node_drain_failures{node="kvm1"} 0
    corral_node_drain_failures{node="kvm2"} 1
    corral_node_drain_failures{node="kvm3"} 0
    # HELP corral_vms VMs by state.
    # TYPE corral_vms gauge
    corral_vms{state="stopped"} 0
    corral_vms{state="pending"} 1
    corral_vms{state="starting"} 0
    corral_vms{state="running"} 1
    corral_vms{state="migrating"} 1
    corral_vms{state="stopping"} 0
    corral_vms{state="awaiting-destination"} 0
    corral_vms{state="failed"} 0
    # HELP corral_migrations Migration jobs by state, among the last 50 jobs the status carries.
    # TYPE corral_migrations gauge
    corral_migrations{state="queued"} 1
    corral_migrations{state="running"} 1
    corral_migrations{state="succeeded"} 1
    corral_migrations{state="failed"} 1
    # HELP corral_migration_bandwidth_bytes_per_second Bandwidth cap the scheduler gave each queued or running migration (0 = uncapped).
    # TYPE corral_migration_bandwidth_bytes_per_second gauge
    corral_migration_bandwidth_bytes_per_second{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 104857600
    corral_migration_bandwidth_bytes_per_second{id="8",vm="cache",from="kvm2",to="kvm1",purpose="drain"} 52428800
    # HELP corral_migration_total_bytes Guest memory each running migration sends in all, from the source's last report.
    # TYPE corral_migration_total_bytes gauge
    corral_migration_total_bytes{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 2147483648
    # HELP corral_migration_remaining_bytes Memory each running migration still has to send, as libvirt estimates it now.
    # TYPE corral_migration_remaining_bytes gauge
    corral_migration_remaining_bytes{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 1245708288
    # HELP corral_migration_progress_ratio 1 - remaining / total for each running migration.
    # TYPE corral_migration_progress_ratio gauge
    corral_migration_progress_ratio{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 0.42
    # HELP corral_migration_rate_bytes_per_second Memory transfer rate of each running migration now.
    # TYPE corral_migration_rate_bytes_per_second gauge
    corral_migration_rate_bytes_per_second{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 115343360
    # HELP corral_migration_dirty_rate_bytes_per_second Rate at which each migrating guest dirties its memory.
    # TYPE corral_migration_dirty_rate_bytes_per_second gauge
    corral_migration_dirty_rate_bytes_per_second{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 12582912
    # HELP corral_migration_eta_seconds Remaining / rate for each running migration: a floor.
    # TYPE corral_migration_eta_seconds gauge
    corral_migration_eta_seconds{id="7",vm="odd\"vm\\\n",from="kvm2",to="kvm1",purpose="drain"} 11
    # HELP corral_migration_downtime_seconds How long each succeeded migration paused its guest at switchover.
    # TYPE corral_migration_downtime_seconds gauge
    corral_migration_downtime_seconds{id="6",vm="db",from="kvm2",to="kvm1",purpose="move"} 0.085
    # HELP corral_events_total History lines this node's agent recorded since it started (corral events), by kind: fencing (a node fenced), failover (a VM placed away from a lost node), migration_failed, refusal.
    # TYPE corral_events_total counter
    corral_events_total{kind="fencing"} 1
    corral_events_total{kind="failover"} 2
    corral_events_total{kind="migration_failed"} 0
    corral_events_total{kind="refusal"} 0

    """#

    @Test func rendersTheExactExpositionText() throws {
        let text = StatusMetrics.render(try Self.report())
        #expect(text == Self.expected)
        if text != Self.expected {
            let got = text.split(separator: "\n", omittingEmptySubsequences: false)
            let want = Self.expected.split(separator: "\n", omittingEmptySubsequences: false)
            for (i, pair) in zip(got, want).enumerated() where pair.0 != pair.1 {
                Issue.record("first difference on line \(i + 1):\n got  \(pair.0)\n want \(pair.1)")
                break
            }
        }
    }

    /// Every sample line is `name{labels} value` with a parsable value, and each family has
    /// HELP and TYPE once, before its first sample: what a scraper requires.
    @Test func everyLineIsWellFormed() throws {
        var described: Set<String> = []
        for line in StatusMetrics.render(try Self.report()).split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let name = String(line.split(separator: " ")[2])
                if line.hasPrefix("# TYPE ") {
                    #expect(line.hasSuffix(name.hasSuffix("_total") ? " counter" : " gauge"), "counters end in _total")
                    #expect(described.insert(name).inserted)
                }
                continue
            }
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            #expect(described.contains(name), "\(name) has a sample before its TYPE")
            let value = line.split(separator: " ").last.map(String.init) ?? ""
            #expect(Double(value) != nil, "value \(value) in \(line)")
        }
    }

    @Test func unreachableIsUpZero() {
        #expect(StatusMetrics.render(nil) == """
        # HELP corral_up Whether corral metrics read corrald's status (1) or could not reach it (0).
        # TYPE corral_up gauge
        corral_up 0

        """)
    }

    @Test func labelAndHelpEscaping() {
        #expect(Exposition.escapeLabel("a\\b\"c\nd") == #"a\\b\"c\nd"#)
        #expect(Exposition.escapeHelp("a\\b\"c\nd") == #"a\\b"c\nd"#)
        #expect(Exposition.format(3) == "3" && Exposition.format(0.085) == "0.085" && Exposition.format(68719476736) == "68719476736")
    }

    @Test func textfileIsReplacedAtomically() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/corral.prom"
        try "old\n".write(toFile: path, atomically: false, encoding: .utf8)
        try StatusMetrics.writeAtomically("corral_up 1\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "corral_up 1\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["corral.prom"], "no temporary file is left")
        var status = stat()
        stat(path, &status)
        #expect(status.st_mode & 0o777 == 0o644)
        #expect(throws: StatusMetrics.MetricsFileError.self) { try StatusMetrics.writeAtomically("x", to: scratch.path + "/missing/corral.prom") }
    }

    @Test func monitorFrame() throws {
        var report = try Self.report()
        report.vms[2].name = "web1"
        report.migrations[2].vm = "web1"
        let frame = StatusFrame.render(report, at: Date(timeIntervalSince1970: 1_796_461_803), intervalSeconds: 2)
        #expect(frame == """
        Corral on kvm1 (id 1)  2026-12-05 09:10:03 UTC  (every 2 s, Ctrl-C to quit)
        Cluster: quorate; coordinator kvm1
        Members (2): kvm1 kvm2  epoch 3 version 41 digest ab12
        Lease: 4250 ms left on this node

        Nodes: 1 up, 1 draining, 1 fenced
          NODE  STATE     MEMBER  MEMORY USED     VMS
          kvm1  up        yes     6144/65536 MiB  1
          kvm2  draining  yes     2048/32768 MiB  1
          kvm3  fenced    no      0/16384 MiB     0

        VMs: 1 pending, 1 running, 1 migrating
          VM     NODE  STATE      MEMORY    PRIORITY  REASON
          cache  -     pending    8192 MiB  low       no node has 8192 MiB free
          web1   kvm2  migrating  2048 MiB  medium
          db     kvm1  running    4096 MiB  high

        Migrations: 1 running, 1 queued
          web1 kvm2→kvm1 drain running 42% 110 MiB/s eta 11 s cap 100 MiB/s
          cache kvm2→kvm1 drain queued cap 50 MiB/s

        Needs attention:
          drain of kvm2 stopped: cache: no node has 8192 MiB free
          VM cache is pending: no node has 8192 MiB free
          migration 5 of db kvm1→kvm3 failed: destination fenced

        """)
    }
}
