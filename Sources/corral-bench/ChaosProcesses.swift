import Foundation

/// A second, finer watch on the same invariant, at the level of QEMU processes: every 100 ms
/// the host's /proc is scanned for the cluster's QEMU processes (node = the process's network
/// namespace, guest = `-name guest=…`). A guest's QEMU that was *booted* (no `-incoming`, so not
/// a live-migration destination) on one node while an older QEMU of the same guest is still
/// alive on another node means the guest was started elsewhere before its previous node was
/// fenced (DESIGN §3 rules 1 and 3). The overlap is proven, not inferred from two separate
/// answers: the older process is seen alive before and after the younger one, with the same
/// start time (no PID reuse). Migrations never trigger it: their destination carries `-incoming`.
/// Nor does failover staging: a staged QEMU is paused and has never run guest code, which shows
/// as vCPU threads ("CPU 0/TCG") without a single tick of CPU time; only copies whose vCPUs have
/// run count, on both sides.
final class ChaosProcessWatch: @unchecked Sendable {
    struct Process: Sendable, Hashable {
        var pid: Int32
        var node: Int
        var guest: String
        var incoming: Bool
        /// Start time in clock ticks since boot (/proc/PID/stat field 22).
        var start: UInt64
    }

    private let base: String
    private let nodes: Int
    private let log: ChaosLog
    private let lock = NSLock()
    private var stopRequested = false
    private let finished = DispatchSemaphore(value: 0)
    private var namespaces: [String: Int] = [:]
    private var open: [String: (first: Double, last: Double, scans: Int)] = [:]

    private(set) var scans = 0
    private(set) var scanSeconds: [Double] = []
    private(set) var violations: [ChaosViolation] = []

    init(base: String, nodes: Int, log: ChaosLog) {
        self.base = base
        self.nodes = nodes
        self.log = log
    }

    func start() {
        for i in 1...nodes {
            if let text = try? String(contentsOfFile: "\(base)/n\(i)/netns-inode", encoding: .utf8) {
                namespaces[text.trimmingCharacters(in: .whitespacesAndNewlines)] = i
            }
        }
        ChaosThreads.spawn("chaos-processes") { [self] in loop() }
    }

    func stop() {
        lock.withLock { stopRequested = true }
        _ = finished.wait(timeout: .now() + 20)
    }

    func results() -> (scans: Int, scanSeconds: [Double], violations: [ChaosViolation]) {
        lock.withLock { (scans, scanSeconds, violations) }
    }

    private var stopping: Bool { lock.withLock { stopRequested } }

    private func loop() {
        while !stopping {
            let t0 = Date()
            check(scan())
            let took = Date().timeIntervalSince(t0)
            lock.withLock {
                scans += 1
                scanSeconds.append(took)
            }
            let left = 0.1 - took
            if left > 0 { Thread.sleep(forTimeInterval: left) }
        }
        finished.signal()
    }

    /// The cluster's QEMU processes right now.
    func scan() -> [Process] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [Process] = []
        for entry in entries {
            guard let pid = Int32(entry) else { continue }
            guard let comm = Self.read("/proc/\(pid)/comm"), comm.hasPrefix("qemu-system") else { continue }
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net") else { continue }
            let inode = link.replacingOccurrences(of: "net:[", with: "").replacingOccurrences(of: "]", with: "")
            guard let node = namespaces[inode], let (start, zombie) = Self.stat(pid), !zombie else { continue }
            guard let raw = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { continue }
            let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let i = args.firstIndex(of: "-name"), i + 1 < args.count else { continue }
            let spec = args[i + 1]
            guard spec.hasPrefix("guest=") else { continue }
            let guest = String(spec.dropFirst(6).prefix { $0 != "," })
            out.append(Process(pid: pid, node: node, guest: guest, incoming: args.contains("-incoming"), start: start))
        }
        return out
    }

    private func check(_ processes: [Process]) {
        var seen = Set<String>()
        for (guest, copies) in Dictionary(grouping: processes, by: \.guest) where Set(copies.map(\.node)).count > 1 {
            let ordered = copies.sorted { ($0.start, $0.pid) < ($1.start, $1.pid) }
            for (k, young) in ordered.enumerated() where !young.incoming && Self.guestHasRun(young.pid) {
                for old in ordered[..<k] where old.node != young.node && Self.guestHasRun(old.pid) {
                    // Both alive at one instant: old alive after young was seen alive.
                    guard Self.alive(young), Self.alive(old) else { continue }
                    let key = "\(guest):\(old.pid)@node\(old.node)+\(young.pid)@node\(young.node)"
                    seen.insert(key)
                    let now = log.seconds
                    let isNew = lock.withLock { () -> Bool in
                        if var e = open[key] {
                            e.last = now
                            e.scans += 1
                            open[key] = e
                            return false
                        }
                        open[key] = (now, now, 1)
                        return true
                    }
                    if isNew {
                        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
                        let gap = Double(Int64(young.start) - Int64(old.start)) / ticks
                        let v = ChaosViolation(kind: "double-start", round: log.round, atSeconds: now,
                                               detail: String(format: "%@ booted on node%d (QEMU pid %d) while its QEMU on node%d (pid %d%@, started %.2f s earlier) is still alive",
                                                              guest, young.node, young.pid, old.node, old.pid, old.incoming ? ", migrated in" : "", gap))
                        lock.withLock { violations.append(v) }
                        log.event("VIOLATION double-start: \(v.detail)")
                    }
                }
            }
        }
        lock.withLock {
            for (key, e) in open where !seen.contains(key) {
                open[key] = nil
                log.event(String(format: "double-start overlap %@ ended: seen in %d scans over %.2f s", key, e.scans, e.last - e.first))
            }
        }
    }

    /// Some vCPU thread of the QEMU process has used CPU time: the guest's code has run.
    static func guestHasRun(_ pid: Int32) -> Bool {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.contains { tid in
            guard read("/proc/\(pid)/task/\(tid)/comm")?.hasPrefix("CPU ") == true,
                  let stat = read("/proc/\(pid)/task/\(tid)/stat") else { return false }
            // Fields after "comm)": state is 3rd, utime 14th and stime 15th of the whole line.
            let fields = stat.components(separatedBy: ") ").last?.split(separator: " ") ?? []
            guard fields.count > 12 else { return false }
            return (UInt64(fields[11]) ?? 0) + (UInt64(fields[12]) ?? 0) > 0
        }
    }

    static func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// (start time in ticks, is a zombie) of a process, nil if it is gone.
    static func stat(_ pid: Int32) -> (UInt64, Bool)? {
        guard let text = read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, starttime field 22 (1-based over the whole line).
        guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
        return (start, fields[0] == "Z" || fields[0] == "X")
    }

    static func alive(_ p: Process) -> Bool {
        guard let (start, zombie) = stat(p.pid) else { return false }
        return !zombie && start == p.start
    }
}
