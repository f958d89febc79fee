import CorralAgent
import CorralCore
import CorralTestbed
import Foundation

/// `corral-bench drain-real`: drains node1 of a real 3-node libvirt cluster four ways, its link
/// capped with tc, and measures each drain's makespan and the guests' downtime (DESIGN §4).
///
/// The tuned scheduler needs the sending node's link rate. `--link-source configured` (the
/// default): every corrald gets `--link-mbps` equal to the shaped rate (via CORRALD_ARGS); only
/// node1's transmit side is shaped, but in a drain of node1 every byte leaves through node1.
/// `--link-source measured`: no `--link-mbps`; corrald learns a node's link from migration
/// progress (the sum of the rates its running migrations report; it only grows), so until a
/// migration has reported progress the tuned policy falls back to 2 at a time. Either way the
/// measurement can raise the configured value, so the table prints the caps tuned really gave.
/// `migration.stream-mbps` stays 0 (unknown): a stream's cap is the link.
///
/// Workload: a diskless guest idles in firmware with its RAM all zero, and QEMU sends zero pages
/// as a few bytes each: measured, a 128 MiB idle guest's migration sends ~1 MiB, so the link
/// would not matter. With `--workload fill` (the default) each guest instead boots a 512-byte
/// boot sector from its own 1 MiB raw disk in the shared dir, which fills its RAM from 1 MiB to
/// 1 MiB below the top with a non-zero pattern and halts: each migration then sends about the
/// guest's memory (measured 132 MiB for 128 MiB) and dirties nothing while it runs.
enum DrainRealBenchmark {
    /// `loop` iterations between two dirtied pages in `--workload dirty`.
    static let defaultDirtyDelay: UInt32 = 1_000_000

    struct Policy {
        var name: String
        var settings: [(String, String)]
    }

    static let policies = [
        Policy(name: "tuned", settings: [("migration.auto-tune", "on"), ("migration.max-per-node", "0")]),
        Policy(name: "one at a time", settings: [("migration.auto-tune", "off"), ("migration.max-per-node", "1")]),
        Policy(name: "fixed 2", settings: [("migration.auto-tune", "off"), ("migration.max-per-node", "2")]),
        Policy(name: "all at once", settings: [("migration.auto-tune", "off"), ("migration.max-per-node", "0")]),
    ]
    /// Failback (not timed) runs uncapped, two at a time, whatever policy comes next.
    static let failbackSettings = [("migration.auto-tune", "off"), ("migration.max-per-node", "2")]

    struct Drain {
        var makespan: Double
        var jobs: Int
        var succeeded: Int
        var failed: Int
        var totalDowntimeMs: Int
        var maxDowntimeMs: Int
        /// Highest sum of the reported rates of this drain's running migrations (MiB/s).
        var peakRateMiBps: Int
        /// Highest dirty rate a running migration of this drain reported (MiB/s).
        var peakDirtyMiBps: Int
        var bandwidths: [Int]
        /// Bytes node1 transmitted during the drain (its veth's counter), MiB.
        var sentMiB: Double
        /// Empty when virsh shows node1 empty and every guest running exactly once.
        var problems: [String]
    }

    static func run(_ options: BenchOptions, json: Bool) {
        let guests = options.int("guests", default: 6)
        let memory = options.int("memory", default: 128, min: 16)
        let repeats = options.int("repeat", default: 1)
        let link = options.value("link") ?? "200mbit"
        let workload = options.value("workload") ?? "fill"
        guard ["fill", "idle", "dirty"].contains(workload) else {
            FileHandle.standardError.write(Data("corral-bench: --workload takes fill, idle or dirty, not \(workload)\n".utf8))
            exit(2)
        }
        let dirtyDelay = UInt32(options.int("dirty-delay", default: Int(defaultDirtyDelay), min: 1))
        guard let megabits = megabits(link) else {
            FileHandle.standardError.write(Data("corral-bench: --link takes a rate like 200mbit or 1gbit, not \(link)\n".utf8))
            exit(2)
        }
        let linkSource = options.value("link-source") ?? "configured"
        guard linkSource == "configured" || linkSource == "measured" else {
            FileHandle.standardError.write(Data("corral-bench: --link-source takes configured or measured, not \(linkSource)\n".utf8))
            exit(2)
        }
        let names = (1...guests).map { "drain\($0)" }
        let started = Date()
        if linkSource == "configured" {
            let extra = ProcessInfo.processInfo.environment["CORRALD_ARGS"].map { $0 + " " } ?? ""
            setenv("CORRALD_ARGS", extra + "--link-mbps \(megabits)", 1)
        }
        note(json, "bringing up a 3-node libvirt cluster (id \(RealCluster.id), \(RealCluster.base)), "
            + (linkSource == "configured" ? "corrald --link-mbps \(megabits)" : "links measured by corrald"))
        let cluster: LocalCluster
        do {
            cluster = try RealCluster.up(nodes: 3, fenceAgent: false, memoryMiB: max(1024, guests * memory + 256))
        } catch {
            print("cannot bring up the cluster: \(error)")
            exit(1)
        }
        let saveLogs = options.value("save-logs")
        defer { RealCluster.down(cluster, saveLogs: saveLogs, label: "drain-real") }
        var results: [String: [Drain]] = [:]
        do {
            try RealCluster.config(cluster, 1, failbackSettings)
            let shared = cluster.script(["shared-dir"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            for name in names {
                var disks: [String] = []
                if workload != "idle" {
                    let path = "\(shared)/\(name).img"
                    let disk = fillDisk(memoryMiB: memory, dirtyDelay: workload == "dirty" ? dirtyDelay : nil)
                    guard FileManager.default.createFile(atPath: path, contents: disk) else {
                        throw ClusterError("cannot write \(path)")
                    }
                    disks = [path]
                }
                try RealCluster.operate(cluster, 1, .addVM(VMSpec(name: name, memoryMiB: memory, preferredOwners: ["node1"], disks: disks), start: true))
            }
            try cluster.waitUntil("\(guests) guests run on node1", seconds: 120, pollSeconds: 0.2) {
                cluster.guests(1) == Set(names) && allRunning(cluster, names, on: "node1")
            }
            // Time for the boot sector to fill the guest's RAM (well under a second under TCG).
            Thread.sleep(forTimeInterval: 3)
            cluster.shape(1, link)
            note(json, "\(guests) guests × \(memory) MiB on node1 (workload \(workload)); node1's link capped at \(link)")
            for round in 1...repeats {
                for policy in policies {
                    try failBack(cluster, names)
                    try RealCluster.config(cluster, 1, policy.settings)
                    let drain = try drainNode1(cluster, names)
                    results[policy.name, default: []].append(drain)
                    note(json, "round \(round) \(policy.name): \(fmt(drain.makespan)) s, \(drain.succeeded)/\(drain.jobs) jobs ok, downtime \(drain.totalDowntimeMs) ms"
                        + " (max \(drain.maxDowntimeMs)), node1 sent \(fmt(drain.sentMiB)) MiB, peak reported \(drain.peakRateMiBps) MiB/s, peak dirty rate \(drain.peakDirtyMiBps) MiB/s, caps \(drain.bandwidths)"
                        + (drain.problems.isEmpty ? "" : "; PROBLEMS: " + drain.problems.joined(separator: "; ")))
                }
            }
        } catch {
            print("drain-real failed: \(error)")
            print(cluster.script(["status"]).output)
            let diagnostics = RealCluster.diagnostics(cluster)
            print(diagnostics)
            if let saveLogs {
                try? FileManager.default.createDirectory(atPath: saveLogs, withIntermediateDirectories: true)
                try? diagnostics.write(toFile: saveLogs + "/drain-real-diagnostics.txt", atomically: true, encoding: .utf8)
            }
            printTable(results, guests: guests, memory: memory, workload: workload, linkSource: linkSource, link: link, megabits: megabits, repeats: repeats, json: json, started: started)
            RealCluster.down(cluster, saveLogs: saveLogs, label: "drain-real")
            exit(1)
        }
        printTable(results, guests: guests, memory: memory, workload: workload, linkSource: linkSource, link: link, megabits: megabits, repeats: repeats, json: json, started: started)
    }

    // MARK: steps

    /// Resumes node1 with failback when it is drained and waits until virsh shows every guest
    /// back on node1 and no migration left.
    static func failBack(_ cluster: LocalCluster, _ names: [String]) throws(ClusterError) {
        guard let node1 = cluster.status(1)?.nodes.first(where: { $0.name == "node1" }), node1.state != "up" else { return }
        try RealCluster.config(cluster, 1, failbackSettings)
        try RealCluster.operate(cluster, 1, .resumeNode("node1", failback: true))
        try cluster.waitUntil("every guest is back on node1", seconds: 300, pollSeconds: 0.2) {
            guard cluster.guests(1) == Set(names), let r = cluster.status(1) else { return false }
            return !r.migrations.contains { $0.state == "queued" || $0.state == "running" } && allRunning(cluster, names, on: "node1", report: r)
        }
    }

    /// `node drain node1`, timed from the request until node1 reports drained.
    static func drainNode1(_ cluster: LocalCluster, _ names: [String]) throws(ClusterError) -> Drain {
        let before = cluster.status(1)?.migrations.map(\.id).max() ?? 0
        var peak = 0
        var dirty = 0
        let sentBefore = transmittedBytes(cluster, 1)
        let start = Date()
        try RealCluster.operate(cluster, 1, .drainNode("node1"))
        var end = start
        var failure: String?
        var last: StatusReport?
        try cluster.waitUntil("node1 is drained", seconds: 600, pollSeconds: 0.05) {
            guard let r = cluster.status(1), let node1 = r.nodes.first(where: { $0.name == "node1" }) else { return false }
            last = r
            let now = Date()
            let rate = r.migrations.filter { $0.id > before && $0.purpose == "drain" && $0.state == "running" }.compactMap(\.rateMiBps).reduce(0, +)
            peak = max(peak, rate)
            dirty = max(dirty, r.migrations.filter { $0.id > before && $0.state == "running" }.compactMap(\.dirtyRateMiBps).max() ?? 0)
            switch node1.state {
            case "drained": end = now; return true
            case "draining": return false
            default:
                end = now
                failure = "drain stopped, node1 is \(node1.state): " + node1.drainFailures.joined(separator: "; ")
                return true
            }
        }
        // The jobs of this drain; wait (briefly) for the last one's downtime to be recorded.
        var jobs: [StatusReport.MigrationRow] = []
        try? cluster.waitUntil("this drain's jobs have ended", seconds: 10, pollSeconds: 0.1) {
            guard let r = cluster.status(1) ?? last else { return false }
            jobs = r.migrations.filter { $0.id > before && $0.purpose == "drain" }
            return !jobs.contains { $0.state == "queued" || $0.state == "running" }
        }
        let sent = Double((transmittedBytes(cluster, 1) ?? 0) - (sentBefore ?? 0)) / 1_048_576
        let ok = jobs.filter { $0.state == "succeeded" }
        var problems = failure.map { [$0] } ?? []
        for job in jobs where job.state == "failed" { problems.append("\(job.vm) \(job.from)→\(job.to) failed: \(job.failure)") }
        problems += verify(cluster, names)
        return Drain(makespan: end.timeIntervalSince(start), jobs: jobs.count, succeeded: ok.count,
                     failed: jobs.filter { $0.state == "failed" }.count,
                     totalDowntimeMs: ok.map(\.downtimeMs).reduce(0, +), maxDowntimeMs: ok.map(\.downtimeMs).max() ?? 0,
                     peakRateMiBps: peak, peakDirtyMiBps: dirty, bandwidths: jobs.map(\.bandwidthMiBps), sentMiB: sent, problems: problems)
    }

    /// Bytes node `i` has sent on its veth vI (/proc/net/dev inside the node: its own netns).
    static func transmittedBytes(_ cluster: LocalCluster, _ i: Int) -> Int? {
        let dev = cluster.exec(i, ["cat", "/proc/net/dev"]).output
        guard let line = dev.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("v\(i):") }) else { return nil }
        let fields = line.split(separator: ":", maxSplits: 1).last?.split(separator: " ") ?? []
        return fields.count > 8 ? Int(fields[8]) : nil
    }

    /// A 1 MiB raw disk whose boot sector (x86, hand-assembled) switches to 32-bit protected
    /// mode and fills RAM from 1 MiB to 1 MiB below `memoryMiB` with 0xA5A5A5A5. Then, with
    /// `dirtyDelay` nil, it halts with interrupts off; otherwise it keeps writing one dword per
    /// 4 KiB page, page after page over that range and round again, spinning `dirtyDelay`
    /// `loop` iterations between pages: a guest that dirties distinct pages at a steady rate
    /// (the pre-copy model's D; libvirt's job stats report what it really is). Listing (org 0x7C00):
    ///   cli; xor ax,ax; mov ds,ax; mov ss,ax; mov sp,0x7C00; in al,0x92; or al,2; out 0x92,al
    ///   lgdt [0x7D18]; mov eax,cr0; or al,1; mov cr0,eax; jmp 0x08:0x7C22
    ///   0x7C22 (32-bit): mov ax,0x10; mov ds/es/ss,ax; mov edi,0x100000; mov ecx,COUNT
    ///   mov eax,0xA5A5A5A5; cld; rep stosd
    ///   halting:  0x7C3E: cli; hlt; jmp 0x7C3E
    ///   dirtying: 0x7C3E: mov edi,0x100000; 0x7C43: mov [edi],eax; add edi,0x1000; cmp edi,TOP
    ///             jb 0x7C58; mov edi,0x100000; 0x7C58: mov ecx,DELAY; loop $; inc eax; jmp 0x7C43
    ///   0x7D00 GDT: null, code 0x00CF9A000000FFFF, data 0x00CF92000000FFFF; 0x7D18: dw 23, dd 0x7D00
    static func fillDisk(memoryMiB: Int, dirtyDelay: UInt32? = nil) -> Data {
        var sector: [UInt8] = [
            0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0x8E, 0xD0, 0xBC, 0x00, 0x7C, 0xE4, 0x92, 0x0C, 0x02, 0xE6, 0x92,
            0x0F, 0x01, 0x16, 0x18, 0x7D, 0x0F, 0x20, 0xC0, 0x0C, 0x01, 0x0F, 0x22, 0xC0, 0xEA, 0x22, 0x7C,
            0x08, 0x00, 0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0, 0xBF, 0x00, 0x00, 0x10,
            0x00, 0xB9, 0x00, 0x00, 0x00, 0x00, 0xB8, 0xA5, 0xA5, 0xA5, 0xA5, 0xFC, 0xF3, 0xAB,
        ]
        func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) } }
        let count = UInt32(max(0, memoryMiB - 2) * 1_048_576 / 4)
        sector.replaceSubrange(0x32..<0x36, with: le(count))
        if let dirtyDelay {
            let top = 0x100000 + count * 4
            sector += [0xBF, 0x00, 0x00, 0x10, 0x00, 0x89, 0x07, 0x81, 0xC7, 0x00, 0x10, 0x00, 0x00, 0x81, 0xFF] + le(top)
                + [0x72, 0x05, 0xBF, 0x00, 0x00, 0x10, 0x00, 0xB9] + le(max(1, dirtyDelay)) + [0xE2, 0xFE, 0x40, 0xEB, 0xE1]
        } else {
            sector += [0xFA, 0xF4, 0xEB, 0xFC]
        }
        sector += [UInt8](repeating: 0x90, count: 0x100 - sector.count)
        sector += [0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0x9A, 0xCF, 0, 0xFF, 0xFF, 0, 0, 0, 0x92, 0xCF, 0]
        sector += [0x17, 0x00, 0x00, 0x7D, 0x00, 0x00]
        sector += [UInt8](repeating: 0, count: 510 - sector.count) + [0x55, 0xAA]
        return Data(sector + [UInt8](repeating: 0, count: 1_048_576 - 512))
    }

    /// virsh in every node: node1 runs nothing, every guest runs exactly once, nothing else runs.
    static func verify(_ cluster: LocalCluster, _ names: [String]) -> [String] {
        var problems: [String] = []
        var count: [String: Int] = [:]
        for i in 1...3 {
            guard let running = cluster.guests(i) else { problems.append("virsh does not answer in node\(i)"); continue }
            if i == 1 && !running.isEmpty { problems.append("node1 still runs \(running.sorted().joined(separator: ","))") }
            for g in running { count[g, default: 0] += 1 }
        }
        for name in names where count[name, default: 0] != 1 { problems.append("\(name) runs \(count[name, default: 0]) times") }
        for (g, _) in count where !names.contains(g) { problems.append("unexpected guest \(g)") }
        return problems
    }

    static func allRunning(_ cluster: LocalCluster, _ names: [String], on node: String, report: StatusReport? = nil) -> Bool {
        guard let r = report ?? cluster.status(1) else { return false }
        return names.allSatisfy { n in r.vms.contains { $0.name == n && $0.node == node && $0.state == "running" } }
    }

    /// "200mbit" → 200; "1gbit" → 1000; "1.5gbit" → 1500 (megabits per second, decimal).
    static func megabits(_ rate: String) -> Int? {
        let lower = rate.lowercased()
        for (suffix, factor) in [("gbit", 1000.0), ("mbit", 1.0), ("kbit", 0.001)] where lower.hasSuffix(suffix) {
            guard let value = Double(lower.dropLast(suffix.count)), value > 0 else { return nil }
            let mbit = Int((value * factor).rounded())
            return mbit > 0 ? mbit : nil
        }
        return nil
    }

    // MARK: output

    static func note(_ json: Bool, _ text: String) {
        FileHandle.standardError.write(Data("drain-real: \(text)\n".utf8))
    }

    static func printTable(_ results: [String: [Drain]], guests: Int, memory: Int, workload: String, linkSource: String, link: String, megabits: Int, repeats: Int, json: Bool, started: Date) {
        let wall = Date().timeIntervalSince(started)
        func med(_ runs: [Drain], _ f: (Drain) -> Double) -> Double { RealCluster.median(runs.map(f)) ?? 0 }
        if json {
            let rows = policies.compactMap { p -> String? in
                guard let runs = results[p.name], !runs.isEmpty else { return nil }
                let each = runs.map { d in
                    "{\"makespanSeconds\":\(fmt(d.makespan)),\"jobs\":\(d.jobs),\"succeeded\":\(d.succeeded),\"failed\":\(d.failed),"
                        + "\"totalDowntimeMs\":\(d.totalDowntimeMs),\"maxDowntimeMs\":\(d.maxDowntimeMs),\"peakRateMiBps\":\(d.peakRateMiBps),\"peakDirtyMiBps\":\(d.peakDirtyMiBps),\"sentMiB\":\(fmt(d.sentMiB)),"
                        + "\"bandwidthCapsMiBps\":[\(d.bandwidths.map(String.init).joined(separator: ","))],"
                        + "\"problems\":[\(d.problems.map { "\"\(escape($0))\"" }.joined(separator: ","))]}"
                }
                return "{\"policy\":\"\(p.name)\",\"settings\":{\(p.settings.map { "\"\($0.0)\":\"\($0.1)\"" }.joined(separator: ","))},"
                    + "\"makespanSeconds\":\(fmt(med(runs) { $0.makespan })),\"totalDowntimeMs\":\(Int(med(runs) { Double($0.totalDowntimeMs) })),"
                    + "\"maxDowntimeMs\":\(Int(med(runs) { Double($0.maxDowntimeMs) })),\"failedJobs\":\(runs.map(\.failed).reduce(0, +)),"
                    + "\"runs\":[\(each.joined(separator: ","))]}"
            }
            print("{\"bench\":\"drain-real\",\"guests\":\(guests),\"memoryMiB\":\(memory),\"workload\":\"\(workload)\",\"link\":\"\(link)\",\"linkSource\":\"\(linkSource)\",\"linkMbpsShaped\":\(megabits),"
                + "\"linkMiBps\":\(Units.mibps(megabits: megabits)),\"repeat\":\(repeats),\"wallSeconds\":\(fmt(wall)),\"policies\":[\(rows.joined(separator: ","))]}")
            return
        }
        print("drain of node1 on a real 3-node libvirt cluster: \(guests) TCG guests × \(memory) MiB (\(["fill": "RAM filled with a non-zero pattern, then idle", "idle": "idle in firmware, RAM zero", "dirty": "RAM filled, then one page dirtied every --dirty-delay loop iterations, round and round"][workload]!)), node1's link capped at \(link) (tc tbf)")
        let shaped = Units.mibps(megabits: megabits)
        print(linkSource == "configured"
            ? "tuned knows the link by configuration: corrald --link-mbps \(megabits) (= \(shaped) MiB/s); corrald may raise it from migration progress"
            : "tuned knows the link only as corrald measures it from migration progress (shaped: \(shaped) MiB/s)")
        let caps = (results["tuned"] ?? []).map { "[" + $0.bandwidths.map(String.init).joined(separator: ",") + "]" }
        if !caps.isEmpty { print("caps tuned gave its migrations (MiB/s), per round: " + caps.joined(separator: " ") + "; stream-mbps 0") }
        print(repeats > 1 ? "median of \(repeats) rounds; failed jobs summed over all rounds" : "one round")
        let header = ["policy", "makespan s", "total downtime ms", "max downtime ms", "failed jobs", "jobs", "node1 sent MiB", "avg MiB/s", "peak dirty MiB/s"]
        let widths = [15, 12, 19, 17, 13, 6, 16, 11, 16]
        print(zip(header, widths).map { RealCluster.pad($0, $1) }.joined())
        for p in policies {
            guard let runs = results[p.name], !runs.isEmpty else { continue }
            let cells = [p.name, fmt(med(runs) { $0.makespan }), "\(Int(med(runs) { Double($0.totalDowntimeMs) }))",
                         "\(Int(med(runs) { Double($0.maxDowntimeMs) }))", "\(runs.map(\.failed).reduce(0, +))",
                         "\(runs.map(\.jobs).reduce(0, +) / runs.count)", "\(Int(med(runs) { $0.sentMiB }))",
                         fmt(med(runs) { $0.sentMiB / max($0.makespan, 0.001) }), "\(Int(med(runs) { Double($0.peakDirtyMiBps) }))"]
            print(zip(cells, widths).map { RealCluster.pad($0, $1) }.joined())
        }
        let problems = policies.flatMap { p in (results[p.name] ?? []).flatMap { d in d.problems.map { "\(p.name): \($0)" } } }
        print(problems.isEmpty ? "virsh after every drain: node1 empty, every guest running exactly once" : "PROBLEMS:\n  " + problems.joined(separator: "\n  "))
        print("wall time \(fmt(wall)) s")
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: " ")
    }
}
