import CorralAgent
import CorralCore
import CorralTestbed
import Foundation
import Synchronization

/// `corral-bench failover`: crashes a node of a real 3-node libvirt cluster (token 1000 ms)
/// holding N guests and measures, with virsh in the survivors, how long until every guest runs
/// again: from the kill, and from the survivors' new Corosync membership (corrald's log). Four
/// modes: fence agent or self-fence lease alone, the victim a plain member or the coordinator.
enum FailoverBenchmark {
    struct Mode {
        var key: String
        var title: String
        var fenceAgent: Bool
        var victim: Int
        var targetMedian: Double
        var targetAfterMembership: Double?
        var target: String {
            "≤ \(fmt1(targetMedian)) s median" + (targetAfterMembership.map { ", ≤ \(fmt1($0)) s after the membership" } ?? "")
        }
    }

    /// The coordinator is the lowest node id of the membership: node1.
    static let modes = [
        Mode(key: "a", title: "fence agent, victim node3", fenceAgent: true, victim: 3, targetMedian: 3.7, targetAfterMembership: 0.2),
        Mode(key: "b", title: "lease alone, victim node3", fenceAgent: false, victim: 3, targetMedian: 6.0, targetAfterMembership: nil),
        Mode(key: "c", title: "fence agent, victim node1 (coordinator)", fenceAgent: true, victim: 1, targetMedian: 3.8, targetAfterMembership: 0.2),
        Mode(key: "d", title: "lease alone, victim node1 (coordinator)", fenceAgent: false, victim: 1, targetMedian: 6.0, targetAfterMembership: nil),
    ]

    struct Run {
        /// From the kill (the moment the bench saw the victim's corosync die) to virsh showing
        /// every guest running in the survivors.
        var killToRunning: Double?
        /// From the survivors' first "membership … left [victim]" log line to the same moment.
        var membershipToRunning: Double?
        /// From the kill to that membership line (failure detection).
        var detection: Double?
        /// From the membership to corrald's last "starting GUEST" line (fencing and placement).
        var membershipToStarts: Double?
        /// From that line to virsh showing every guest running (QEMU start under TCG).
        var vmStart: Double?
        /// How long `local-cluster kill` took (the processes die somewhere inside it).
        var killCommand: Double
        /// From calling `local-cluster kill` to the victim's corosync being gone.
        var killDelay: Double?
        /// The fence agent's own run time as corrald logged it (ms).
        var fenceAgentMs: Int?
        /// From the membership to corrald's "state sync done" on the new coordinator (ms).
        var syncMs: Int?
        var polls: Int
        var problems: [String]
        var excerpt: [String]
    }

    struct Setup {
        var token: String
        var leaseMs: Int
        var marginMs: Int
    }

    static func run(_ options: BenchOptions, json: Bool) {
        let runs = options.int("runs", default: 5)
        let guests = options.int("guests", default: 3)
        let memory = options.int("memory", default: 128, min: 16)
        let verbose = options.flag("verbose")
        let recovery = RecoverySettings()
        let leaseMs = options.int("lease-ms", default: recovery.leaseMs)
        let marginMs = options.int("margin-ms", default: recovery.marginMs, min: 0)
        let started = Date()
        var results: [String: [Run]] = [:]
        var setups: [Bool: Setup] = [:]
        var failed: String?
        for fence in [true, false] {
            note("bringing up a 3-node libvirt cluster (id \(RealCluster.id), \(RealCluster.base)), token 1000 ms, \(fence ? "--fence-agent (Deploy/fence-local)" : "no fence agent")")
            let cluster: LocalCluster
            do {
                cluster = try RealCluster.up(nodes: 3, fenceAgent: fence, memoryMiB: max(1024, 2 * guests * memory + 256))
            } catch {
                failed = "cannot bring up the cluster: \(error)"
                break
            }
            do {
                if leaseMs != recovery.leaseMs { try RealCluster.config(cluster, 2, [("fencing.lease-ms", "\(leaseMs)")]) }
                if marginMs != recovery.marginMs { try RealCluster.config(cluster, 2, [("fencing.margin-ms", "\(marginMs)")]) }
                setups[fence] = Setup(token: RealCluster.token(cluster, 1), leaseMs: leaseMs, marginMs: marginMs)
                for mode in modes where mode.fenceAgent == fence {
                    for n in 1...runs {
                        let run = try once(cluster, mode, run: n, guests: guests, memory: memory)
                        results[mode.key, default: []].append(run)
                        note("(\(mode.key)) run \(n): kill→running \(sec(run.killToRunning)) s, membership→running \(sec(run.membershipToRunning)) s,"
                            + " detection \(sec(run.detection)) s, kill command \(fmt(run.killCommand)) s, \(run.polls) virsh polls"
                            + (run.problems.isEmpty ? "" : "; PROBLEMS: " + run.problems.joined(separator: "; ")))
                    }
                }
            } catch {
                failed = "failover bench failed: \(error)"
                print(cluster.script(["status"]).output)
                print(RealCluster.diagnostics(cluster))
            }
            RealCluster.down(cluster, saveLogs: options.value("save-logs"), label: fence ? "failover-fence" : "failover-lease")
            if failed != nil { break }
        }
        report(results, setups: setups, runs: runs, guests: guests, memory: memory, json: json, verbose: verbose, wall: Date().timeIntervalSince(started))
        if let failed {
            print(failed)
            exit(1)
        }
    }

    // MARK: one run

    static func once(_ cluster: LocalCluster, _ mode: Mode, run n: Int, guests: Int, memory: Int) throws(ClusterError) -> Run {
        let victim = mode.victim
        let survivors = (1...3).filter { $0 != victim }
        let names = (1...guests).map { "fo\(mode.key)\(n)g\($0)" }
        let wanted = Set(names)
        // Place the guests on the victim and let the cluster settle.
        for name in names {
            try RealCluster.operate(cluster, survivors[0], .addVM(VMSpec(name: name, memoryMiB: memory, preferredOwners: ["node\(victim)"]), start: true))
        }
        try cluster.waitUntil("\(guests) guests run on node\(victim)", seconds: 120, pollSeconds: 0.2) {
            guard cluster.guests(victim)?.isSuperset(of: wanted) == true, let r = cluster.status(survivors[0]) else { return false }
            return names.allSatisfy { g in r.vms.contains { $0.name == g && $0.node == "node\(victim)" && $0.state == "running" } }
        }
        try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 60)
        Thread.sleep(forTimeInterval: 1)

        // One virsh shell per survivor, polled from its own thread.
        var sessions: [Int: VirshSession] = [:]
        for i in survivors {
            guard let s = VirshSession(cluster, node: i) else { throw ClusterError("cannot open a virsh session in node\(i)") }
            sessions[i] = s
        }
        defer { sessions.values.forEach { $0.close() } }
        let watch = Watch(wanted: wanted)
        let done = DispatchGroup()
        for i in survivors {
            let session = sessions[i]!
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                while !watch.finished {
                    if let running = session.runningGuests(timeoutSeconds: 5) { watch.record(i, running, at: Date()) } else { watch.failedPoll() }
                    usleep(20_000)
                }
            }
        }

        // The kill moment: when the victim's corosync is gone, watched every 2 ms (the script
        // kills the node's processes somewhere inside its run, after its own start-up).
        let death = DeathWatch(pid: corosyncPID(cluster, victim))
        let requested = Date()
        cluster.crash(victim)
        let killCommand = Date().timeIntervalSince(requested)
        let killed = death.wait(seconds: 5) ?? requested
        let deadline = killed.addingTimeInterval(90)
        while watch.coveredAt == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        watch.stop()
        done.wait()
        let coveredAt = watch.coveredAt
        var problems: [String] = []
        if death.pid == nil { problems.append("victim's corosync PID unknown; timed from the kill request") }
        if coveredAt == nil { problems.append("guests not all running in the survivors after 90 s (last seen: \(watch.summary))") }
        if watch.failures > 0 { problems.append("\(watch.failures) virsh polls failed") }

        // corrald's logs of the survivors: membership, sync, fence agent.
        let logs = survivors.map { ($0, RealCluster.logLines(cluster, $0, since: requested.addingTimeInterval(-1))) }
        let membership = logs.compactMap { _, lines in
            lines.first { $0.1.contains(" membership [") && $0.1.contains("left [\(victim)]") }?.0
        }.min()
        if membership == nil { problems.append("no membership line without node\(victim) in the survivors' logs") }
        if let first = logs.flatMap({ $0.1 }).filter({ $0.1.contains(" membership [") && $0.1.contains("left [\(victim)]") }).min(by: { $0.0 < $1.0 }),
           first.1.contains("agent only") {
            problems.append("the survivors first saw node\(victim)'s corrald leave alone (\"agent only\": it died before corosync in the kill), \(fmt(first.0.timeIntervalSince(killed))) s from the kill")
        }
        let coordinator = survivors.min()!
        let coordinatorLines = logs.first { $0.0 == coordinator }!.1
        let syncDone = membership.flatMap { m in coordinatorLines.first { $0.0 >= m && $0.1.contains("state sync done in") }?.0 }
        let fenceLine = coordinatorLines.first { $0.1.contains("fence agent for node\(victim) exited") }
        let fenceMs = fenceLine.flatMap { $0.1.components(separatedBy: " after ").last?.split(separator: " ").first }.flatMap { Int($0) }
        if mode.fenceAgent, fenceLine == nil { problems.append("the coordinator did not log a fence agent run") }
        if mode.fenceAgent, let fenceLine, !fenceLine.1.contains("exited 0") { problems.append(String(fenceLine.1)) }
        let starts = membership.flatMap { m in
            logs.flatMap { $0.1 }.filter { entry in entry.0 >= m && names.contains { entry.1.hasSuffix(" starting \($0)") } }.map(\.0).max()
        }
        let until = (coveredAt ?? Date()).addingTimeInterval(1)
        let excerpt = logs.flatMap { i, lines in lines.filter { $0.0 <= until }.map { "n\(i) " + $0.1 } }.sorted { $0.dropFirst(3) < $1.dropFirst(3) }

        let result = Run(killToRunning: coveredAt.map { $0.timeIntervalSince(killed) },
                         membershipToRunning: coveredAt.flatMap { c in membership.map { c.timeIntervalSince($0) } },
                         detection: membership.map { $0.timeIntervalSince(killed) },
                         membershipToStarts: starts.flatMap { s in membership.map { s.timeIntervalSince($0) } },
                         vmStart: starts.flatMap { s in coveredAt.map { $0.timeIntervalSince(s) } },
                         killCommand: killCommand, killDelay: death.pid == nil ? nil : killed.timeIntervalSince(requested),
                         fenceAgentMs: fenceMs, syncMs: syncDone.flatMap { s in membership.map { RealCluster.ms(s.timeIntervalSince($0)) } },
                         polls: watch.polls, problems: problems, excerpt: ["kill requested at \(clock(requested)), victim's corosync gone at \(clock(killed)), local-cluster kill returned after \(fmt(killCommand)) s;"
                            + " every guest running per virsh at \(coveredAt.map(clock) ?? "-")"] + excerpt)

        // Power the victim back on, wait until the three agree, then stop and remove the guests.
        cluster.start(victim)
        try cluster.waitForAgreement([1, 2, 3], members: 3, seconds: 120)
        for name in names { try RealCluster.operate(cluster, 2, .stopVM(name)) }
        try cluster.waitUntil("the run's guests are stopped", seconds: 120, pollSeconds: 0.2) {
            guard let r = cluster.status(1) else { return false }
            return names.allSatisfy { g in r.vms.contains { $0.name == g && $0.state == "stopped" } }
        }
        for name in names { try RealCluster.operate(cluster, 2, .removeVM(name)) }
        try cluster.waitUntil("no guest runs anywhere", seconds: 60, pollSeconds: 0.2) {
            (1...3).allSatisfy { cluster.guests($0)?.isDisjoint(with: wanted) == true }
        }
        return result
    }

    /// The PID of node `i`'s corosync (the last one local-cluster started there), if it runs.
    static func corosyncPID(_ cluster: LocalCluster, _ i: Int) -> Int32? {
        guard let last = cluster.file(i, "corosync.pids").split(separator: "\n").last, let pid = Int32(last.trimmingCharacters(in: .whitespaces)),
              (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("corosync") == true else { return nil }
        return pid
    }

    static func clock(_ date: Date) -> String {
        date.ISO8601Format(Date.ISO8601FormatStyle().time(includingFractionalSeconds: true)) + "Z"
    }

    /// Notes when a process dies (gone from /proc, or a zombie), polling every 2 ms.
    final class DeathWatch: Sendable {
        let pid: Int32?
        private let diedAt = Mutex<Date?>(nil)
        private let done = DispatchSemaphore(value: 0)
        init(pid: Int32?) {
            self.pid = pid
            guard let pid else { return }
            Thread.detachNewThread { [self] in
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline {
                    let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
                    if stat == nil || stat!.components(separatedBy: ") ").last?.hasPrefix("Z") == true {
                        self.diedAt.withLock { $0 = Date() }
                        break
                    }
                    usleep(2_000)
                }
                self.done.signal()
            }
        }
        func wait(seconds: Double) -> Date? {
            guard pid != nil, done.wait(timeout: .now() + seconds) == .success else { return nil }
            return diedAt.withLock { $0 }
        }
    }

    /// What the pollers saw: the latest running set per survivor and when they first covered
    /// every wanted guest.
    final class Watch: Sendable {
        let wanted: Set<String>
        private struct State {
            var latest: [Int: Set<String>] = [:]
            var coveredAt: Date?
            var polls = 0
            var failures = 0
            var stopped = false
        }
        private let state = Mutex(State())
        init(wanted: Set<String>) { self.wanted = wanted }

        func record(_ node: Int, _ running: Set<String>, at time: Date) {
            state.withLock { s in
                s.polls += 1
                s.latest[node] = running
                if s.coveredAt == nil, wanted.isSubset(of: s.latest.values.reduce(into: Set<String>()) { $0.formUnion($1) }) {
                    s.coveredAt = time
                }
            }
        }
        func failedPoll() { state.withLock { $0.failures += 1 } }
        func stop() { state.withLock { $0.stopped = true } }
        var finished: Bool { state.withLock { $0.stopped || $0.coveredAt != nil } }
        var coveredAt: Date? { state.withLock { $0.coveredAt } }
        var polls: Int { state.withLock { $0.polls } }
        var failures: Int { state.withLock { $0.failures } }
        var summary: String { state.withLock { s in s.latest.sorted { $0.key < $1.key }.map { "node\($0.key): \($0.value.sorted())" }.joined(separator: ", ") } }
    }

    // MARK: output

    static func note(_ text: String) { FileHandle.standardError.write(Data("failover: \(text)\n".utf8)) }
    static func sec(_ x: Double?) -> String { x.map(fmt) ?? "n/a" }
    static func fmt1(_ x: Double) -> String { String(format: "%.1f", x) }

    static func report(_ results: [String: [Run]], setups: [Bool: Setup], runs: Int, guests: Int, memory: Int, json: Bool, verbose: Bool, wall: Double) {
        func stats(_ values: [Double?]) -> (median: Double?, max: Double?) {
            let v = values.compactMap { $0 }
            return (RealCluster.median(v), v.max())
        }
        if json {
            let rows = modes.compactMap { m -> String? in
                guard let rs = results[m.key], let setup = setups[m.fenceAgent] else { return nil }
                let total = stats(rs.map(\.killToRunning)), after = stats(rs.map(\.membershipToRunning)), det = stats(rs.map(\.detection))
                func num(_ x: Double?) -> String { x.map { fmt($0) } ?? "null" }
                func arr(_ xs: [Double?]) -> String { "[" + xs.map(num).joined(separator: ",") + "]" }
                return "{\"mode\":\"\(m.key)\",\"title\":\"\(m.title)\",\"fenceAgent\":\(m.fenceAgent),\"victim\":\"node\(m.victim)\","
                    + "\"token\":\"\(setup.token)\",\"leaseMs\":\(setup.leaseMs),\"marginMs\":\(setup.marginMs),"
                    + "\"killToRunningSeconds\":{\"median\":\(num(total.median)),\"max\":\(num(total.max)),\"runs\":\(arr(rs.map(\.killToRunning)))},"
                    + "\"membershipToRunningSeconds\":{\"median\":\(num(after.median)),\"max\":\(num(after.max)),\"runs\":\(arr(rs.map(\.membershipToRunning)))},"
                    + "\"detectionSeconds\":{\"median\":\(num(det.median)),\"runs\":\(arr(rs.map(\.detection)))},"
                    + "\"membershipToStartsSeconds\":\(arr(rs.map(\.membershipToStarts))),\"vmStartSeconds\":\(arr(rs.map(\.vmStart))),"
                    + "\"killDelaySeconds\":\(arr(rs.map(\.killDelay))),"
                    + "\"fenceAgentMs\":[\(rs.map { $0.fenceAgentMs.map(String.init) ?? "null" }.joined(separator: ","))],"
                    + "\"syncMs\":[\(rs.map { $0.syncMs.map(String.init) ?? "null" }.joined(separator: ","))],"
                    + "\"targetMedianSeconds\":\(m.targetMedian),\"targetAfterMembershipSeconds\":\(m.targetAfterMembership.map { "\($0)" } ?? "null"),"
                    + "\"problems\":[\(rs.flatMap(\.problems).map { "\"\(DrainRealBenchmark.escape($0))\"" }.joined(separator: ","))]}"
            }
            print("{\"bench\":\"failover\",\"runs\":\(runs),\"guests\":\(guests),\"memoryMiB\":\(memory),\"wallSeconds\":\(fmt(wall)),\"modes\":[\(rows.joined(separator: ","))]}")
            return
        }
        print("failover on a real 3-node libvirt cluster: \(guests) idle TCG guests × \(memory) MiB on the victim, \(runs) runs per mode, SIGKILL of every process of the victim")
        for fence in [true, false] {
            guard let s = setups[fence] else { continue }
            print("  \(fence ? "fence-agent cluster" : "lease-only cluster "): token 1000 ms configured, runtime.config.totem.token = \(s.token) ms; fencing.lease-ms \(s.leaseMs), fencing.margin-ms \(s.marginMs)")
        }
        print("times in s, median / max. kill = the bench saw the victim's corosync die (polled every 2 ms); 'after membership' counts from the")
        print("survivors' first corrald log line of the new membership; running = virsh list --state-running in the survivors (polled every ~20 ms).")
        print("breakdown (medians): detection = kill → membership; sync = membership → state sync done on the new coordinator; fence = the fence")
        print("agent's run time; → starts = membership → corrald's last 'starting GUEST'; VM start = that → all running per virsh")
        let header = ["mode", "kill → running", "after membership", "detection", "sync ms", "fence ms", "→ starts", "VM start", "target"]
        let widths = [44, 16, 18, 11, 9, 10, 10, 10, 0]
        print(zip(header, widths).map { RealCluster.pad($0, $1) }.joined())
        for m in modes {
            guard let rs = results[m.key] else { continue }
            let total = stats(rs.map(\.killToRunning)), after = stats(rs.map(\.membershipToRunning)), det = stats(rs.map(\.detection))
            let sync = RealCluster.median(rs.compactMap(\.syncMs).map(Double.init)).map { "\(Int($0))" } ?? "n/a"
            let fence = RealCluster.median(rs.compactMap(\.fenceAgentMs).map(Double.init)).map { "\(Int($0))" } ?? "-"
            let cells = ["(\(m.key)) \(m.title)", "\(sec(total.median)) / \(sec(total.max))", "\(sec(after.median)) / \(sec(after.max))",
                         sec(det.median), sync, fence, sec(stats(rs.map(\.membershipToStarts)).median), sec(stats(rs.map(\.vmStart)).median), m.target]
            print(zip(cells, widths).map { RealCluster.pad($0, $1) }.joined())
        }
        let all = modes.flatMap { results[$0.key] ?? [] }
        print("local-cluster kill took \(sec(RealCluster.median(all.map(\.killCommand)))) s from call to return, \(sec(RealCluster.median(all.compactMap(\.killDelay)))) s from call to the victim's corosync gone (medians)")
        let problems = modes.flatMap { m in (results[m.key] ?? []).enumerated().flatMap { n, r in r.problems.map { "(\(m.key)) run \(n + 1): \($0)" } } }
        if !problems.isEmpty { print("PROBLEMS:\n  " + problems.joined(separator: "\n  ")) }
        print("wall time \(fmt(wall)) s")
        if verbose {
            for m in modes {
                guard let first = results[m.key]?.first else { continue }
                print("\n--- (\(m.key)) \(m.title), run 1: the survivors' corrald logs from the kill until 1 s after every guest ran")
                first.excerpt.forEach { print($0) }
            }
        }
    }
}
