import CorralAgent
import CorralCore
import CorralTestbed
import Foundation

/// `corral-bench chaos`: the real fault campaign (issue 5 §4). A 5-node libvirt cluster with
/// ~15 small guests; each round injects a seeded sequence of 1–3 faults (crash, partition,
/// 2/3 split, link flap, SIGSTOP of corrald shorter and longer than the lease, corosync
/// restart) plus drains and moves, heals everything, and checks with the hypervisors' own view
/// that no VM ever ran twice, none was lost, leases sit where the guests run and all nodes agree.
/// Exit status: 0 no violation, 1 violations, 2 usage, 3 the cluster could not be set up.
enum ChaosCampaign {
    struct Options: Sendable {
        var seed: UInt64 = 1
        var rounds = 3
        var nodes = 5
        var guests = 15
        var json = false
        var clusterID = 7
        var base = "/run/corral-chaos"
        var recoverySeconds = 90.0
        var sampleMs = 250
        var fenceAgent = false
        var logs = "/tmp/corral-chaos-logs"
        /// Sets `fencing.lease-ms` once the cluster is up (default: the product's own).
        var leaseMs: Int?
    }

    static let usage = """
    usage: corral-bench chaos [--seed S] [--rounds R] [--nodes N] [--guests G] [--recovery SECONDS]
                              [--sample-ms MS] [--fence-agent] [--lease-ms MS] [--cluster-id K] [--base DIR] [--logs DIR] [--json]
      defaults: seed 1, 3 rounds, 5 nodes, 15 guests, recovery bound 90 s, sampling every 250 ms,
      cluster id 7 in /run/corral-chaos, node logs saved under /tmp/corral-chaos-logs/seedS-TIME.
      --lease-ms MS sets the cluster's fencing.lease-ms (corral config set) before the guests are added.
      Needs root, libvirt + QEMU, and corrald/corral in $CORRAL_BIN (default: this binary's directory).
    """

    static func parse(_ arguments: [String]) -> Options? {
        var o = Options()
        var rest = arguments[...]
        func value() -> String? { rest.isEmpty ? nil : rest.removeFirst() }
        while let word = rest.popFirst() {
            switch word {
            case "--json": o.json = true
            case "--fence-agent": o.fenceAgent = true
            case "--seed": guard let v = value().flatMap({ UInt64($0) }) else { return nil }; o.seed = v
            case "--rounds": guard let v = value().flatMap({ Int($0) }), v >= 1 else { return nil }; o.rounds = v
            case "--nodes": guard let v = value().flatMap({ Int($0) }), (3...9).contains(v) else { return nil }; o.nodes = v
            case "--guests": guard let v = value().flatMap({ Int($0) }), (1...60).contains(v) else { return nil }; o.guests = v
            case "--recovery": guard let v = value().flatMap({ Double($0) }), v > 0 else { return nil }; o.recoverySeconds = v
            case "--sample-ms": guard let v = value().flatMap({ Int($0) }), v >= 0 else { return nil }; o.sampleMs = v
            case "--cluster-id": guard let v = value().flatMap({ Int($0) }), (1...9).contains(v) else { return nil }; o.clusterID = v
            case "--base": guard let v = value(), v.hasPrefix("/run/") else { return nil }; o.base = v
            case "--logs": guard let v = value() else { return nil }; o.logs = v
            case "--lease-ms": guard let v = value().flatMap({ Int($0) }), v >= 1000 else { return nil }; o.leaseMs = v
            default: return nil
            }
        }
        return o
    }

    static func run(_ arguments: [String]) -> Int32 {
        guard let options = parse(arguments) else {
            FileHandle.standardError.write(Data((usage + "\n").utf8))
            return 2
        }
        guard getuid() == 0 else {
            FileHandle.standardError.write(Data("corral-bench chaos: must run as root\n".utf8))
            return 2
        }
        // The binaries of this build drive the cluster unless CORRAL_BIN says otherwise.
        if ProcessInfo.processInfo.environment["CORRAL_BIN"] == nil {
            setenv("CORRAL_BIN", URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path, 1)
        }
        return ChaosRun(options).execute()
    }
}

/// SIGINT/SIGTERM: a C handler writes the signal number to a pipe; a thread tears the cluster
/// down. A real handler (not SIG_IGN) is reset to the default in every program we spawn, so the
/// cluster's daemons keep their normal signal behaviour.
nonisolated(unsafe) private var chaosSignalWriteFD: Int32 = -1

/// One campaign run: owns the cluster, the watchers and the results.
final class ChaosRun: @unchecked Sendable {
    let options: ChaosCampaign.Options
    let log: ChaosLog
    let cluster: LocalCluster
    let hypervisors: ChaosHypervisors
    private let lock = NSLock()
    /// Serialises every `local-cluster` call: `CommandRunner` (which LocalCluster uses) sets
    /// close-on-exec on its pipe only after creating it, so a daemon that a concurrent
    /// `local-cluster start` leaves running could inherit another call's pipe and that call
    /// would never see EOF (seen: a heal hung 17 minutes). One call at a time avoids it.
    private let clusterLock = NSLock()
    private var tornDown = false
    private var interrupted = false
    private var sampler: ChaosSampler?
    private var processes: ChaosProcessWatch?
    private var guests: [ChaosGuest] = []
    private var leases: ChaosLeases
    private var logDirectory: String

    // Results.
    private var rounds: [RoundResult] = []
    private var faultCounts: [String: Int] = [:]
    private var operationOutcomes: [String: Int] = [:]
    private var violations: [ChaosViolation] = []
    private var failedSeen: Set<String> = []
    /// Availability findings that break no safety rule: healthy quorate nodes that self-fenced.
    private var findings: [String] = []
    private var setupSeconds = 0.0
    private var timing = ""


    struct RoundResult {
        var index: Int
        var faults: [String]
        var operations: [String]
        var healAt: Double
        var recoverySeconds: Double?
        var violations: [ChaosViolation]
        var notes: [String]
    }

    init(_ options: ChaosCampaign.Options) {
        self.options = options
        log = ChaosLog(toStderr: options.json)
        cluster = LocalCluster(id: options.clusterID, base: options.base, nodes: options.nodes)
        hypervisors = ChaosHypervisors(base: options.base, nodes: options.nodes)
        leases = ChaosLeases(base: options.base, nodes: options.nodes, disks: [])
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        logDirectory = "\(options.logs)/seed\(options.seed)-\(stamp)"
    }

    private var isInterrupted: Bool { lock.withLock { interrupted } }

    /// `Deploy/local-cluster ARGS…` for the campaign's cluster, one call at a time.
    @discardableResult
    private func sh(_ arguments: [String]) -> (status: Int32, output: String) {
        clusterLock.withLock { cluster.script(arguments) }
    }

    /// Sleeps in small steps so an interrupt is noticed quickly.
    private func pause(_ seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end && !isInterrupted { Thread.sleep(forTimeInterval: min(0.1, max(0, end.timeIntervalSinceNow))) }
    }

    // MARK: run

    func execute() -> Int32 {
        ChaosThreads.unblockSignals()
        installSignalHandlers()
        let plans = ChaosPlanner.plan(seed: options.seed, rounds: options.rounds, nodes: options.nodes,
                                      guests: (1...options.guests).map(Self.guestName))
        log.say("chaos: seed \(options.seed), \(options.rounds) rounds, \(options.nodes) nodes, \(options.guests) guests; cluster id \(options.clusterID) in \(options.base); binaries \(LocalCluster.binaries)")
        do {
            try setUp()
        } catch {
            log.say("chaos: setup failed: \(error)")
            violations.append(ChaosViolation(kind: "setup", round: 0, atSeconds: log.seconds, detail: "\(error)"))
            tearDown()
            return 3
        }
        for plan in plans where !isInterrupted {
            runRound(plan)
        }
        tearDown()
        if isInterrupted { return 130 }
        let report = summary()
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        if options.json {
            let data = (try? JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            FileHandle.standardOutput.write(data + Data("\n".utf8))
            try? data.write(to: URL(fileURLWithPath: "\(logDirectory)/report.json"))
        } else {
            let text = summaryText(report)
            print(text)
            try? text.write(toFile: "\(logDirectory)/report.txt", atomically: true, encoding: .utf8)
        }
        return allViolations().isEmpty ? 0 : 1
    }

    static func guestName(_ i: Int) -> String { String(format: "g%02d", i) }

    /// The campaign's guests: 64 MiB each; every third has a preferred owner, two anti-affinity
    /// classes, every fourth a raw disk on the shared directory, the last one not HA.
    func guestSpecs() -> [ChaosGuest] {
        let shared = "\(options.base)/shared"
        return (1...options.guests).map { i in
            let name = Self.guestName(i)
            let priority: Priority = [.high, .medium, .low][i % 3]
            let preferred = i % 3 == 1 ? ["node\((i / 3) % options.nodes + 1)"] : []
            let anti: String? = i % 5 == 2 ? "web" : (i % 5 == 4 ? "db" : nil)
            let disks = i % 4 == 3 ? ["\(shared)/\(name).img"] : []
            let ha = !(i == options.guests && options.guests >= 3)
            return ChaosGuest(spec: VMSpec(name: name, memoryMiB: 64, priority: priority, preferredOwners: preferred,
                                           antiAffinityClass: anti, highlyAvailable: ha, disks: disks))
        }
    }

    private func setUp() throws {
        let t0 = Date()
        log.event("bringing up \(options.nodes) libvirt nodes (token 1000 ms\(options.fenceAgent ? ", fence agent" : ", self-fence leases only"))")
        _ = try clusterLock.withLock {
            try LocalCluster.up(id: options.clusterID, base: options.base, nodes: options.nodes, hypervisor: .libvirt,
                                token: 1000, fenceAgent: options.fenceAgent)
        }
        if isInterrupted { throw ClusterError("interrupted") }
        log.event(String(format: "cluster up after %.1f s", Date().timeIntervalSince(t0)))
        func cmap(_ key: String) -> String {
            let out = sh(["exec", "1", "corosync-cmapctl", "-g", key]).output
            return out.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
        }
        timing = "corosync effective token \(cmap("runtime.config.totem.token")) ms, consensus \(cmap("runtime.config.totem.consensus")) ms; "
            + "fencing.lease-ms \(options.leaseMs.map(String.init) ?? "default")"
        log.event(timing)
        defer {
            // corrald's own account of the lease it applies (it may floor the setting).
            if let line = cluster.file(1, "corrald.log").split(separator: "\n").last(where: { $0.contains("detects failures within") }),
               let text = line.split(separator: " ", maxSplits: 1).last {
                timing += "; node1 corrald: \(text)"
                log.event("node1 corrald: \(text)")
            }
        }
        if let lease = options.leaseMs {
            let r = cluster.request(1, OperatorRequestLine(.setConfig(key: "fencing.lease-ms", value: "\(lease)")), timeoutSeconds: 30)
            log.event("config fencing.lease-ms \(lease): \(describe(r))")
            guard case .reply(.done)? = r else { throw ClusterError("cannot set fencing.lease-ms: \(describe(r))") }
        }
        guests = guestSpecs()
        let disks = guests.flatMap(\.spec.disks)
        for disk in disks {
            let r = CommandRunner.run(["/usr/bin/qemu-img", "create", "-q", "-f", "raw", disk, "8M"])
            guard r.status == 0 else { throw ClusterError("qemu-img create \(disk): \(r.output)") }
        }
        leases = ChaosLeases(base: options.base, nodes: options.nodes, disks: disks)
        for guest in guests {
            var answer: ControlResponse?
            for _ in 0..<10 {
                answer = cluster.request(1, OperatorRequestLine(.addVM(guest.spec, start: true)), timeoutSeconds: 30)
                if case .reply(.done)? = answer { break }
                pause(1)
            }
            guard case .reply(.done)? = answer else { throw ClusterError("cannot add \(guest.name): \(String(describing: answer))") }
        }
        log.event("added \(guests.count) guests: " + guests.map { g in
            var extras: [String] = []
            if let p = g.spec.preferredOwners.first { extras.append("pref \(p)") }
            if let a = g.spec.antiAffinityClass { extras.append("anti \(a)") }
            if !g.spec.disks.isEmpty { extras.append("disk") }
            if !g.spec.highlyAvailable { extras.append("no-ha") }
            extras.append(g.spec.priority.rawValue)
            return "\(g.name)(\(extras.joined(separator: ",")))"
        }.joined(separator: " "))
        var last = ChaosCheck()
        let deadline = Date().addingTimeInterval(240)
        var lastShown = Date()
        while Date() < deadline && !isInterrupted {
            last = ChaosChecker.check(cluster, hypervisors, leases, guests: guests)
            if last.passed { break }
            if Date().timeIntervalSince(lastShown) >= 15 {
                lastShown = Date()
                log.event("waiting for the guests: \(last.problems.prefix(6).joined(separator: "; "))")
            }
            pause(1)
        }
        guard last.passed else { throw ClusterError("guests not all running after 240 s: \(last.problems.prefix(10).joined(separator: "; "))") }
        setupSeconds = Date().timeIntervalSince(t0)
        log.event(String(format: "all %d guests run (%@); setup took %.1f s", guests.count, placementText(last.placement), setupSeconds))
        let sampler = ChaosSampler(hypervisors: hypervisors, leases: leases, log: log, periodMs: options.sampleMs)
        let processes = ChaosProcessWatch(base: options.base, nodes: options.nodes, log: log)
        lock.withLock {
            self.sampler = sampler
            self.processes = processes
        }
        sampler.start()
        processes.start()
    }

    func placementText(_ placement: [Int: [String]]) -> String {
        (1...options.nodes).map { "node\($0): \(placement[$0]?.sorted().joined(separator: ",") ?? "-")" }.joined(separator: "; ")
    }

    // MARK: rounds

    /// What the round's faults left behind, for the heal.
    private final class RoundState: @unchecked Sendable {
        let lock = NSLock()
        var crashed = Set<Int>()
        var partitioned = Set<Int>()
        var split: [Int]?
        var paused = Set<Int>()
        var drained = Set<Int>()
        var operations: [String] = []
    }

    private func runRound(_ plan: ChaosRoundPlan) {
        log.round = plan.index
        let faultLabels = plan.faults.map(\.label)
        log.say("round \(plan.index)/\(options.rounds): faults: \(faultLabels.joined(separator: "; "))"
            + (plan.operations.isEmpty ? "" : "; operations: \(plan.operations.map(\.label).joined(separator: "; "))")
            + String(format: "; hold %.1f s; resume with%@ failback", Double(plan.holdMs) / 1000, plan.failback ? "" : "out"))
        let firesBefore = watchdogFires()
        let agentRunsBefore = fenceAgentRuns()
        let state = RoundState()
        let repairs = DispatchGroup()
        let ops = DispatchGroup()
        for (k, fault) in plan.faults.enumerated() {
            pause(Double(fault.delayMs) / 1000)
            if isInterrupted { break }
            inject(fault, state, repairs)
            faultCounts[fault.kind.rawValue, default: 0] += 1
            for op in plan.operations where op.afterFault == k {
                ChaosThreads.spawn("chaos-operation", group: ops) { [self] in
                    pause(Double(op.delayMs) / 1000)
                    if !isInterrupted { issue(op, state) }
                }
            }
        }
        pause(Double(plan.holdMs) / 1000)
        repairs.wait()
        ops.wait()
        if isInterrupted { return }
        let views = viewsBeforeHeal()
        log.event("before heal: \(views)")

        // Heal everything.
        let healAt = log.seconds
        let t0 = Date()
        var notes: [String] = []
        let fires = watchdogFires()
        let fired = (1...options.nodes).filter { (fires[$0] ?? 0) > (firesBefore[$0] ?? 0) }
        if !fired.isEmpty { notes.append("test watchdog fired on \(fired.map { "node\($0)" }.joined(separator: ", "))") }
        let agentRuns = fenceAgentRuns()
        let agentFenced = (1...options.nodes).filter { (agentRuns[$0] ?? 0) > (agentRunsBefore[$0] ?? 0) }
        if !agentFenced.isEmpty { notes.append("fence agent run against \(agentFenced.map { "node\($0)" }.joined(separator: ", "))") }
        // Nodes no fault of this round touched. If they alone are a majority, they stayed one
        // quorate partition all along: none of them should have lost its lease.
        let touched = Set(plan.faults.flatMap(\.nodes))
        let untouched = (1...options.nodes).filter { !touched.contains($0) }
        let healthyFenced = untouched.count * 2 > options.nodes ? Set(fired + agentFenced).filter { untouched.contains($0) }.sorted() : []
        if !healthyFenced.isEmpty {
            let finding = "round \(plan.index): \(healthyFenced.map { "node\($0)" }.joined(separator: ", ")) fenced (\(healthyFenced.map { fired.contains($0) ? "watchdog" : "fence agent" }.joined(separator: ", "))) although untouched by every fault and a quorate majority (nodes \(untouched)) all along"
            findings.append(finding)
            notes.append("HEALTHY NODES SELF-FENCED: \(healthyFenced.map { "node\($0)" }.joined(separator: ", "))")
            log.event("FINDING \(finding)")
        }
        for node in fired { log.event("node\(node) watchdog: \(lastLines(node, "watchdog.log", matching: "watchdog fired", count: 2).joined(separator: " | "))") }
        if state.split != nil { unsplit() }
        for i in state.partitioned.sorted() { sh(["heal", "\(i)"]) }
        for i in 1...options.nodes where agentStopped(i) { sh(["resume", "\(i)"]) }
        var toStart: [Int] = []
        for i in 1...options.nodes {
            let missing = ["corosync", "corrald", "libvirtd", "virtlockd"].filter { !processRuns(i, $0) }
            guard !missing.isEmpty else { continue }
            toStart.append(i)
            if !state.crashed.contains(i) && !fired.contains(i) && !agentFenced.contains(i) {
                let note = "node\(i): \(missing.joined(separator: ", ")) not running although not crashed, not fenced by its watchdog nor by the fence agent"
                notes.append(note)
                log.event("UNEXPECTED \(note); corrald.out tail: \(lastLines(i, "corrald.out", count: 5).joined(separator: " | "))")
            }
        }
        for i in toStart {
            let r = sh(["start", "\(i)"])
            if r.status != 0 { log.event("start node\(i) failed: \(r.output.suffix(400))") }
        }
        log.event(String(format: "healed links/agents, started %@ in %.1f s; waiting for recovery", toStart.isEmpty ? "no node" : toStart.map { "node\($0)" }.joined(separator: ","), Date().timeIntervalSince(t0)))

        // Wait for recovery: agreement, nodes resumed, every guest where the state says.
        var check = ChaosCheck()
        var lastAdmin: Date?
        var lastShown = Date()
        let deadline = t0.addingTimeInterval(options.recoverySeconds)
        while !isInterrupted {
            check = ChaosChecker.check(cluster, hypervisors, leases, guests: guests)
            if check.passed || Date() >= deadline { break }
            if Date().timeIntervalSince(lastShown) >= 15 {
                lastShown = Date()
                log.event("not recovered yet: \(check.problems.prefix(6).joined(separator: "; "))")
            }
            if check.agreed, let report = check.report, lastAdmin.map({ Date().timeIntervalSince($0) > 10 }) ?? true {
                lastAdmin = Date()
                let drained = state.lock.withLock { state.drained }
                let names = Set(check.notActive + drained.map { "node\($0)" }).sorted()
                for name in names {
                    let r = cluster.request(1, OperatorRequestLine(.resumeNode(name, failback: plan.failback)), timeoutSeconds: 15)
                    log.event("resume \(name)\(plan.failback ? " --failback" : ""): \(describe(r))")
                }
                for name in check.stoppedNonHA where report.vms.first(where: { $0.name == name })?.state == "stopped" {
                    let r = cluster.request(1, OperatorRequestLine(.startVM(name)), timeoutSeconds: 15)
                    log.event("start \(name) (not HA, stopped by a failure): \(describe(r))")
                }
            }
            pause(0.5)
        }
        if isInterrupted { return }
        let recovery = check.passed ? Date().timeIntervalSince(t0) : nil
        var found: [ChaosViolation] = []
        let now = log.seconds
        if !check.passed {
            found.append(ChaosViolation(kind: "recovery-timeout", round: plan.index, atSeconds: now,
                                        detail: "not recovered \(Int(options.recoverySeconds)) s after the heal: \(check.problems.prefix(12).joined(separator: "; "))"))
            if !check.agreed { found.append(ChaosViolation(kind: "no-agreement", round: plan.index, atSeconds: now, detail: check.problems.filter { $0.hasPrefix("node") || $0.hasPrefix("digests") }.joined(separator: "; "))) }
            for lost in check.notRunning { found.append(ChaosViolation(kind: "lost-vm", round: plan.index, atSeconds: now, detail: lost)) }
            for m in check.leaseMismatches { found.append(ChaosViolation(kind: "lease-mismatch", round: plan.index, atSeconds: now, detail: m)) }
            if !check.leaseMismatches.isEmpty { log.event("virtlockd: \(leases.virtlockdDiagnostics())") }
            if !check.pending.isEmpty { notes.append("pending at the deadline (not lost): \(check.pending.joined(separator: "; "))") }
            for p in check.problems.prefix(30) { log.event("unrecovered: \(p)") }
        }
        for f in check.failed where !failedSeen.contains(f) {
            failedSeen.insert(f)
            found.append(ChaosViolation(kind: "failed-vm", round: plan.index, atSeconds: now, detail: f))
        }
        for v in found { log.event("VIOLATION \(v.kind): \(v.detail)") }
        violations += found
        let sampled = (sampler?.results().violations ?? []) + (processes?.results().violations ?? [])
        let roundViolations = sampled.filter { $0.round == plan.index } + found
        let result = RoundResult(index: plan.index, faults: faultLabels, operations: state.lock.withLock { state.operations },
                                 healAt: healAt, recoverySeconds: recovery, violations: roundViolations, notes: notes)
        rounds.append(result)
        log.say(String(format: "round %d: faults %@ | recovery %@ | violations %d%@", plan.index, "[\(faultLabels.joined(separator: "; "))]",
                       recovery.map { String(format: "%.1f s", $0) } ?? "TIMEOUT", roundViolations.count,
                       notes.isEmpty ? "" : " | notes: \(notes.joined(separator: "; "))"))
        if check.passed { log.event("placement after recovery: \(placementText(check.placement))") }
    }

    private func inject(_ fault: ChaosFault, _ state: RoundState, _ repairs: DispatchGroup) {
        let node = fault.nodes[0]
        log.event("inject \(fault.label)")
        switch fault.kind {
        case .crash:
            sh(["kill", "\(node)"])
            state.lock.withLock { _ = state.crashed.insert(node) }
        case .partition:
            sh(["partition", "\(node)"])
            state.lock.withLock { _ = state.partitioned.insert(node) }
        case .split:
            split(minority: fault.nodes)
            state.lock.withLock { state.split = fault.nodes }
        case .flap:
            // As `local-cluster flap`, but without holding the cluster lock while the link is down.
            sh(["partition", "\(node)"])
            ChaosThreads.spawn("chaos-repair", group: repairs) { [self] in
                pause(Double(fault.durationMs) / 1000)
                sh(["heal", "\(node)"])
                log.event("flap node\(node): link up again")
            }
        case .pauseShort, .pauseLong:
            let r = sh(["pause", "\(node)"])
            if r.status != 0 { log.event("pause node\(node) failed: \(r.output.suffix(300))") }
            state.lock.withLock { _ = state.paused.insert(node) }
            ChaosThreads.spawn("chaos-repair", group: repairs) { [self] in
                pause(Double(fault.durationMs) / 1000)
                let r = sh(["resume", "\(node)"])
                log.event("SIGCONT corrald of node\(node) after \(fault.durationMs) ms: \(r.status == 0 ? "resumed" : "no corrald to resume (\(r.output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(120)))")")
            }
        case .corosyncRestart:
            sh(["kill-corosync", "\(node)"])
            ChaosThreads.spawn("chaos-repair", group: repairs) { [self] in
                pause(Double(fault.durationMs) / 1000)
                let r = sh(["start", "\(node)"])
                log.event("node\(node): corosync started again after \(fault.durationMs) ms\(r.status == 0 ? "" : " (start failed: \(r.output.suffix(300)))")")
            }
        }
    }

    private func issue(_ op: ChaosOperation, _ state: RoundState) {
        let request: OperatorRequest
        switch op.kind {
        case let .drain(node):
            request = .drainNode("node\(node)")
        case let .move(vm, to):
            request = .moveVM(vm, to: to.map { "node\($0)" })
        }
        let answer = cluster.request(op.via, OperatorRequestLine(request), timeoutSeconds: 15)
        let text = describe(answer)
        let outcome: String
        switch answer {
        case .reply(.done)?: outcome = "done"
        case .reply(.refused)?: outcome = "refused"
        case nil: outcome = "no answer"
        default: outcome = "error"
        }
        if case let .drain(node) = op.kind, outcome == "done" { state.lock.withLock { _ = state.drained.insert(node) } }
        state.lock.withLock {
            state.operations.append("\(op.label): \(text)")
            operationOutcomes["\(op.kind.name) \(outcome)", default: 0] += 1
        }
        log.event("operation \(op.label): \(text)")
    }

    private func describe(_ answer: ControlResponse?) -> String {
        switch answer {
        case let .reply(.done(text))?: "done: \(text)"
        case let .reply(.refused(text))?: "refused: \(text)"
        case let .reply(.plan(lines))?: "plan: \(lines.joined(separator: "; "))"
        case let .error(text)?: "error: \(text)"
        case .status?, .events?: "unexpected reply to a change"
        case nil: "no answer (timeout or agent down)"
        }
    }

    /// Each node's own view just before the heal (members, quorum), 1 s timeout per node.
    private func viewsBeforeHeal() -> String {
        let lock = NSLock()
        nonisolated(unsafe) var parts: [Int: String] = [:]
        ChaosThreads.parallel(options.nodes) { [self] k in
            let i = k + 1
            let text: String
            if let r = cluster.status(i, timeoutSeconds: 1) {
                text = "node\(i) \(r.quorate ? "quorate" : "NOT quorate") members [\(r.members.map { $0.replacingOccurrences(of: "node", with: "") }.joined(separator: ","))]"
            } else {
                text = "node\(i) no answer"
            }
            lock.withLock { parts[i] = text }
        }
        return (1...options.nodes).compactMap { parts[$0] }.joined(separator: "; ")
    }

    // MARK: 2/3 split (bridge filter in the cluster's bridge namespace)

    private var bridgeNamespace: String { "corral\(options.clusterID)-br" }

    private func split(minority: [Int]) {
        let majority = (1...options.nodes).filter { !minority.contains($0) }
        func ports(_ nodes: [Int]) -> String { nodes.map { "\"p\($0)\"" }.joined(separator: ", ") }
        let rules = """
        table bridge corral_chaos {
          chain forward {
            type filter hook forward priority 0; policy accept;
            iifname { \(ports(minority)) } oifname { \(ports(majority)) } drop
            iifname { \(ports(majority)) } oifname { \(ports(minority)) } drop
          }
        }
        """
        // Not in the cluster's base directory: `down` leaves a directory holding files it did not create.
        let file = NSTemporaryDirectory() + "corral-chaos-\(options.clusterID)-\(getpid())-split.nft"
        try? rules.write(toFile: file, atomically: true, encoding: .utf8)
        let r = CommandRunner.run(["/usr/sbin/ip", "netns", "exec", bridgeNamespace, "/usr/sbin/nft", "-f", file])
        try? FileManager.default.removeItem(atPath: file)
        if r.status != 0 { log.event("split failed: \(r.output)") }
    }

    private func unsplit() {
        let r = CommandRunner.run(["/usr/sbin/ip", "netns", "exec", bridgeNamespace, "/usr/sbin/nft", "delete", "table", "bridge", "corral_chaos"])
        if r.status != 0 { log.event("unsplit failed: \(r.output)") }
    }

    // MARK: node processes

    /// Whether `program` runs in node i, by the PID file local-cluster keeps for it.
    private func processRuns(_ i: Int, _ program: String) -> Bool {
        let file = program == "corosync" ? "corosync.pids" : "\(program).pid"
        guard let pid = cluster.file(i, file).split(separator: "\n").last.flatMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }),
              let comm = ChaosProcessWatch.read("/proc/\(pid)/comm"), comm == program,
              let (_, zombie) = ChaosProcessWatch.stat(pid) else { return false }
        return !zombie
    }

    /// Whether node i's corrald is stopped (SIGSTOP).
    private func agentStopped(_ i: Int) -> Bool {
        guard let pid = Int32(cluster.file(i, "corrald.pid").trimmingCharacters(in: .whitespacesAndNewlines)),
              ChaosProcessWatch.read("/proc/\(pid)/comm") == "corrald",
              let text = ChaosProcessWatch.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return false }
        return text[text.index(after: close)...].split(separator: " ").first == "T"
    }

    private func watchdogFires() -> [Int: Int] {
        var out: [Int: Int] = [:]
        for i in 1...options.nodes { out[i] = cluster.file(i, "watchdog.log").components(separatedBy: "watchdog fired").count - 1 }
        return out
    }

    /// How often some node's corrald ran the fence agent against node i (its log says so).
    private func fenceAgentRuns() -> [Int: Int] {
        var out: [Int: Int] = [:]
        let logs = (1...options.nodes).map { cluster.file($0, "corrald.log") }
        for i in 1...options.nodes {
            out[i] = logs.reduce(0) { $0 + $1.components(separatedBy: "running the fence agent against node\(i)\n").count - 1 }
        }
        return out
    }

    private func lastLines(_ i: Int, _ file: String, matching: String? = nil, count: Int) -> [String] {
        let lines = cluster.file(i, file).split(separator: "\n").map(String.init)
        return Array((matching.map { m in lines.filter { $0.contains(m) } } ?? lines).suffix(count))
    }

    // MARK: teardown

    private func installSignalHandlers() {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { return }
        chaosSignalWriteFD = fds[1]
        let handler: @convention(c) (Int32) -> Void = { number in
            var byte = UInt8(truncatingIfNeeded: number)
            _ = write(chaosSignalWriteFD, &byte, 1)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        signal(SIGHUP, handler)
        let readFD = fds[0]
        ChaosThreads.spawn("chaos-signals") { [self] in
            var byte: UInt8 = 0
            while read(readFD, &byte, 1) < 0 && errno == EINTR {}
            lock.withLock { interrupted = true }
            log.say("chaos: signal \(byte): tearing the cluster down")
            tearDown()
            exit(128 + Int32(byte))
        }
    }

    /// Stops the watchers, saves every node's logs, removes the cluster (once).
    func tearDown() {
        let first = lock.withLock { () -> Bool in
            defer { tornDown = true }
            return !tornDown
        }
        guard first else {
            // A second caller waits for the first to finish.
            while !lock.withLock({ tornDown && sampler == nil && processes == nil }) { Thread.sleep(forTimeInterval: 0.1) }
            return
        }
        let (s, p) = lock.withLock { (sampler, processes) }
        s?.stop()
        p?.stop()
        saveLogs()
        // Not behind a call that never returns: wait at most 60 s for the cluster lock.
        let locked = clusterLock.lock(before: Date().addingTimeInterval(60))
        cluster.down()
        let again = cluster.script(["down"])
        if locked { clusterLock.unlock() }
        let leftovers = again.output.split(separator: "\n").filter { $0.contains("error") || $0.contains("left ") }
        if !leftovers.isEmpty { log.event("teardown: \(leftovers.joined(separator: " | "))") }
        lock.withLock {
            if let s { finalSampler = s.results() }
            if let p { finalProcesses = p.results() }
            sampler = nil
            processes = nil
        }
        log.event("cluster \(options.clusterID) torn down; node logs saved in \(logDirectory)")
    }

    private var finalSampler: (samples: Int, intervals: [Double], durations: [Double], violations: [ChaosViolation], transients: [String])?
    private var finalProcesses: (scans: Int, scanSeconds: [Double], violations: [ChaosViolation])?

    private func saveLogs() {
        let fm = FileManager.default
        try? fm.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        for i in 1...options.nodes {
            let dir = "\(logDirectory)/n\(i)"
            try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for name in ["corrald.log", "corrald.out", "watchdog.log", "corosync.log", "libvirtd.log", "virtlockd.log"] {
                let source = "\(options.base)/n\(i)/\(name)"
                guard fm.fileExists(atPath: source) else { continue }
                try? fm.removeItem(atPath: "\(dir)/\(name)")
                try? fm.copyItem(atPath: source, toPath: "\(dir)/\(name)")
            }
            let qemuLogs = "\(options.base)/n\(i)/libvirt/log/qemu"
            if let files = try? fm.contentsOfDirectory(atPath: qemuLogs) {
                try? fm.createDirectory(atPath: "\(dir)/qemu", withIntermediateDirectories: true)
                for f in files where f.hasSuffix(".log") { try? fm.copyItem(atPath: "\(qemuLogs)/\(f)", toPath: "\(dir)/qemu/\(f)") }
            }
        }
    }

    // MARK: report

    private func allViolations() -> [ChaosViolation] {
        (violations + (finalSampler?.violations ?? []) + (finalProcesses?.violations ?? [])).sorted { $0.atSeconds < $1.atSeconds }
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }

    private func summary() -> [String: Any] {
        let all = allViolations()
        let recoveries = rounds.compactMap(\.recoverySeconds)
        let sampler = finalSampler
        let processes = finalProcesses
        func stats(_ v: [Double], scale: Double) -> [String: Any] {
            guard !v.isEmpty else { return [:] }
            return ["median": (Self.percentile(v, 50)! * scale).rounded(), "p99": (Self.percentile(v, 99)! * scale).rounded(),
                    "max": (v.max()! * scale).rounded(), "mean": (v.reduce(0, +) / Double(v.count) * scale).rounded()]
        }
        var byKind: [String: Int] = [:]
        for v in all { byKind[v.kind, default: 0] += 1 }
        return [
            "seed": options.seed, "rounds": rounds.count, "nodes": options.nodes, "guests": options.guests,
            "fenceAgent": options.fenceAgent, "leaseMs": options.leaseMs as Any? ?? NSNull(), "timing": timing,
            "faults": faultCounts, "faultsTotal": faultCounts.values.reduce(0, +), "operations": operationOutcomes,
            "violations": all.map { ["kind": $0.kind, "round": $0.round, "atSeconds": ($0.atSeconds * 100).rounded() / 100, "detail": $0.detail] },
            "violationsByKind": byKind, "violationCount": all.count,
            "healthyNodeSelfFences": findings,
            "recoverySeconds": [
                "perRound": rounds.map { $0.recoverySeconds.map { ($0 * 10).rounded() / 10 } as Any? ?? NSNull() },
                "median": Self.percentile(recoveries, 50).map { ($0 * 10).rounded() / 10 } as Any? ?? NSNull(),
                "p99": Self.percentile(recoveries, 99).map { ($0 * 10).rounded() / 10 } as Any? ?? NSNull(),
                "max": recoveries.max().map { ($0 * 10).rounded() / 10 } as Any? ?? NSNull(),
                "timeouts": rounds.filter { $0.recoverySeconds == nil }.count,
            ],
            "hypervisorSampling": [
                "snapshots": sampler?.samples ?? 0,
                "periodMs": stats(sampler?.intervals ?? [], scale: 1000),
                "snapshotDurationMs": stats(sampler?.durations ?? [], scale: 1000),
                "transientSuspects": sampler?.transients ?? [],
            ],
            "processScan": ["scans": processes?.scans ?? 0, "scanMs": stats(processes?.scanSeconds ?? [], scale: 1000)],
            "roundsDetail": rounds.map { r in
                ["round": r.index, "faults": r.faults, "operations": r.operations,
                 "recoverySeconds": r.recoverySeconds.map { ($0 * 10).rounded() / 10 } as Any? ?? NSNull(),
                 "violations": r.violations.map { "\($0.kind): \($0.detail)" }, "notes": r.notes] as [String: Any]
            },
            "setupSeconds": (setupSeconds * 10).rounded() / 10,
            "wallSeconds": (log.seconds * 10).rounded() / 10,
            "logs": logDirectory,
        ]
    }

    private func summaryText(_ r: [String: Any]) -> String {
        let all = allViolations()
        let recoveries = rounds.compactMap(\.recoverySeconds)
        let sampler = finalSampler
        func ms(_ v: [Double], _ p: Double) -> String { Self.percentile(v, p).map { String(format: "%.0f", $0 * 1000) } ?? "-" }
        func s(_ v: Double?) -> String { v.map { String(format: "%.1f s", $0) } ?? "-" }
        var lines = ["", "chaos summary (seed \(options.seed), \(options.nodes) nodes, \(options.guests) guests\(options.fenceAgent ? ", fence agent" : ""))",
                     "  timing             \(timing)"]
        lines.append("  rounds             \(rounds.count)")
        lines.append("  faults injected    \(faultCounts.values.reduce(0, +)): " + faultCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        lines.append("  operations         " + (operationOutcomes.isEmpty ? "none" : operationOutcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        lines.append("  violations         \(all.count)" + (all.isEmpty ? "" : ":"))
        for v in all { lines.append(String(format: "    round %d at %.1f s  %@: %@", v.round, v.atSeconds, v.kind, v.detail)) }
        lines.append("  recovery           median \(s(Self.percentile(recoveries, 50))), p99 \(s(Self.percentile(recoveries, 99))), max \(s(recoveries.max()))"
            + " (\(recoveries.count) of \(rounds.count) rounds recovered within \(Int(options.recoverySeconds)) s; per round: \(rounds.map { s($0.recoverySeconds) }.joined(separator: ", ")))")
        if let sampler {
            lines.append("  hypervisor sampling  \(sampler.samples) snapshots of all \(options.nodes) libvirtds; period median \(ms(sampler.intervals, 50)) ms, p99 \(ms(sampler.intervals, 99)) ms, max \(ms(sampler.intervals, 100)) ms;"
                + " one snapshot takes median \(ms(sampler.durations, 50)) ms, max \(ms(sampler.durations, 100)) ms")
            lines.append("  transient suspects \(sampler.transients.count) (running on two nodes in one snapshot, not in the re-check)")
            for t in sampler.transients.prefix(20) { lines.append("    \(t)") }
        }
        if let p = finalProcesses {
            lines.append("  QEMU process scan  \(p.scans) scans; each takes median \(ms(p.scanSeconds, 50)) ms, max \(ms(p.scanSeconds, 100)) ms")
        }
        lines.append("  healthy self-fences \(findings.count) rounds where quorate nodes no fault touched were fenced (own watchdog or fence agent)" + (findings.isEmpty ? "" : ":"))
        for f in findings { lines.append("    \(f)") }
        for round in rounds where !round.notes.isEmpty { lines.append("  round \(round.index) notes: \(round.notes.joined(separator: "; "))") }
        lines.append(String(format: "  setup              %.1f s", setupSeconds))
        lines.append(String(format: "  total wall time    %.1f s", log.seconds))
        lines.append("  node logs          \(logDirectory)")
        lines.append(all.isEmpty ? "  RESULT: PASS (0 violations)" : "  RESULT: FAIL (\(all.count) violations)")
        _ = r
        return lines.joined(separator: "\n")
    }
}

extension ChaosOperation.Kind {
    var name: String {
        switch self {
        case .drain: "drain"
        case .move: "move"
        }
    }
}
