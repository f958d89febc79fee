import CorralAgent
import CorralCore
import Foundation

/// The run's clock and event log, shared by the campaign and its sampler thread.
final class ChaosLog: @unchecked Sendable {
    private let lock = NSLock()
    let started = Date()
    /// Event lines go to stderr when stdout carries JSON.
    let toStderr: Bool
    private var currentRound = 0

    init(toStderr: Bool) { self.toStderr = toStderr }

    var seconds: Double { Date().timeIntervalSince(started) }
    var round: Int {
        get { lock.withLock { currentRound } }
        set { lock.withLock { currentRound = newValue } }
    }

    func event(_ text: String) {
        let line = String(format: "  [%8.2f s] ", seconds) + text + "\n"
        lock.withLock {
            if toStderr { FileHandle.standardError.write(Data(line.utf8)) } else { FileHandle.standardOutput.write(Data(line.utf8)) }
        }
    }

    func say(_ text: String) {
        lock.withLock {
            let data = Data((text + "\n").utf8)
            if toStderr { FileHandle.standardError.write(data) } else { FileHandle.standardOutput.write(data) }
        }
    }
}

/// A safety or liveness finding. `kind` is one of: double-run, lease-holders, lease-token,
/// lease-mismatch, lost-vm, failed-vm, no-agreement, recovery-timeout, setup.
struct ChaosViolation: Sendable {
    var kind: String
    var round: Int
    var atSeconds: Double
    var detail: String
}

/// The hypervisors' own view: every node's libvirtd asked directly over its UNIX socket from
/// the host (the node's /run is $BASE/nI/run), one `virsh list` per node, all nodes at once.
struct ChaosHypervisors: Sendable {
    let base: String
    let nodes: Int

    /// Node i's active domains, name → state ("running", "paused", "in shutdown", ...); nil if
    /// its libvirtd does not answer (node down).
    func domains(_ i: Int) -> [String: String]? {
        let socket = "\(base)/n\(i)/run/libvirt/libvirt-sock"
        guard FileManager.default.fileExists(atPath: socket) else { return nil }
        let result = CommandRunner.run(["/usr/bin/timeout", "-k", "2", "5", "/usr/bin/virsh", "-q", "-c", "qemu:///system?socket=\(socket)", "list"])
        guard result.status == 0 else { return nil }
        var out: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3 else { continue }
            out[String(fields[1])] = fields[2...].joined(separator: " ")
        }
        return out
    }

    /// All the given nodes queried concurrently; also returns when the snapshot started and
    /// how long the slowest node took (seconds).
    func snapshot(_ which: [Int]? = nil) -> (views: [Int: [String: String]?], duration: Double) {
        let list = which ?? Array(1...nodes)
        let lock = NSLock()
        nonisolated(unsafe) var views: [Int: [String: String]?] = [:]
        let start = Date()
        ChaosThreads.parallel(list.count) { k in
            let view = domains(list[k])
            lock.withLock { views[list[k]] = .some(view) }
        }
        return (views, Date().timeIntervalSince(start))
    }

    /// Name → nodes on which libvirt says the domain is *running* (vCPUs executing).
    static func running(_ views: [Int: [String: String]?]) -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for (node, view) in views {
            for (name, state) in view ?? [:] where state == "running" { out[name, default: []].append(node) }
        }
        return out.mapValues { $0.sorted() }
    }
}

/// Disk leases as seen from outside: the state each node persisted (its view of Corral's lease
/// table) and the lockd leases the node's virtlockd holds in the shared lockspace (/proc/locks).
struct ChaosLeases: Sendable {
    let base: String
    let nodes: Int
    /// disk path → lockspace file (virtlockd names it by the SHA-256 of the path).
    let lockspaceFiles: [String: String]

    init(base: String, nodes: Int, disks: [String]) {
        self.base = base
        self.nodes = nodes
        var files: [String: String] = [:]
        for disk in disks {
            let hash = CommandRunner.run(["/bin/sh", "-c", "printf %s \"$1\" | /usr/bin/sha256sum", "_", disk]).output
            if let digest = hash.split(separator: " ").first { files[disk] = "\(base)/shared/lockspace/\(digest)" }
        }
        lockspaceFiles = files
    }

    /// Node i's persisted state (at most ~200 ms old), nil if unreadable.
    func state(_ i: Int) -> ClusterState? {
        guard let bytes = try? StateFileStore(directory: "\(base)/n\(i)/state").load() else { return nil }
        return try? JSONCoding.decode(ClusterState.self, from: bytes)
    }

    /// The network namespace inode of each node (written by local-cluster).
    func netnsInodes() -> [String: Int] {
        var out: [String: Int] = [:]
        for i in 1...nodes {
            if let text = try? String(contentsOfFile: "\(base)/n\(i)/netns-inode", encoding: .utf8) {
                out[text.trimmingCharacters(in: .whitespacesAndNewlines)] = i
            }
        }
        return out
    }

    /// disk → nodes whose processes hold a POSIX write lock on the disk's lockspace file.
    func lockdHolders() -> [String: [Int]] {
        var inodeToDisk: [UInt64: String] = [:]
        for (disk, file) in lockspaceFiles {
            var st = stat()
            if stat(file, &st) == 0 { inodeToDisk[UInt64(st.st_ino)] = disk }
        }
        guard !inodeToDisk.isEmpty, let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return [:] }
        let namespaces = netnsInodes()
        var out: [String: Set<Int>] = [:]
        for line in locks.split(separator: "\n") {
            // "1: POSIX  ADVISORY  WRITE 7454 fe:00:1041045 0 0"
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 6, f[1] == "POSIX", f[3] == "WRITE", let pid = Int(f[4]) else { continue }
            guard let inode = f[5].split(separator: ":").last.flatMap({ UInt64($0) }), let disk = inodeToDisk[inode] else { continue }
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net") else { continue }
            let ns = link.replacingOccurrences(of: "net:[", with: "").replacingOccurrences(of: "]", with: "")
            out[disk, default: []].insert(namespaces[ns] ?? 0)
        }
        return out.mapValues { $0.sorted() }
    }

    /// disk → the lockspace file's inode now (nil: no file).
    func lockspaceInodes() -> [String: UInt64?] {
        var out: [String: UInt64?] = [:]
        for (disk, file) in lockspaceFiles {
            var st = stat()
            out[disk] = stat(file, &st) == 0 ? UInt64(st.st_ino) : nil
        }
        return out
    }

    /// For a lockd mismatch: which lockspace files each node's virtlockd has open (a
    /// "(deleted)" one is a lease held on a file somebody unlinked).
    func virtlockdDiagnostics() -> String {
        let namespaces = netnsInodes()
        var parts: [String] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), ChaosProcessWatch.read("/proc/\(pid)/comm") == "virtlockd",
                  let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net") else { continue }
            let ns = link.replacingOccurrences(of: "net:[", with: "").replacingOccurrences(of: "]", with: "")
            guard let node = namespaces[ns] else { continue }
            let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { fd -> String? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                      target.contains("/lockspace/") else { return nil }
                var st = stat()
                let inode = stat("/proc/\(pid)/fd/\(fd)", &st) == 0 ? " inode \(st.st_ino)" : ""
                return (target.split(separator: "/").last.map { String($0.prefix(12)) } ?? target) + inode + (target.hasSuffix("(deleted)") ? " (deleted)" : "")
            }
            parts.append("node\(node) virtlockd \(pid): [\(fds.sorted().joined(separator: ", "))]")
        }
        let files = lockspaceInodes().sorted { $0.key < $1.key }.map { disk, inode in
            "\((disk as NSString).lastPathComponent)→\(lockspaceFiles[disk].map { String(($0 as NSString).lastPathComponent.prefix(12)) } ?? "?") inode \(inode.map(String.init) ?? "none")"
        }
        return parts.sorted().joined(separator: "; ") + " | lockspace files: " + files.joined(separator: ", ")
    }
}

/// Samples every node's hypervisor on a background thread for the whole run and records any
/// domain that libvirt shows *running* on two nodes at once, plus lease-table anomalies.
///
/// Rule for a double run: one snapshot asks all nodes concurrently. A name running on two or
/// more nodes in it is only a suspect, because the nodes are not asked at the same instant (a
/// live migration's switchover can put "running on the source" in one answer and "running on
/// the destination" in another). The involved nodes are then asked again at once; if the name
/// is still *running* on two of them, it is a violation: a migration's source is paused from the
/// switchover on and gone within moments, so it cannot stay running next to the destination
/// across two snapshots. Paused domains (incoming migration, post-switchover source) never
/// count. Unconfirmed suspects are kept and reported as transients.
final class ChaosSampler: @unchecked Sendable {
    private let hypervisors: ChaosHypervisors
    private let leases: ChaosLeases
    private let log: ChaosLog
    private let periodSeconds: Double
    private let lock = NSLock()
    private var stopRequested = false
    private let finished = DispatchSemaphore(value: 0)

    private(set) var samples = 0
    private(set) var intervals: [Double] = []
    private(set) var durations: [Double] = []
    private(set) var violations: [ChaosViolation] = []
    private(set) var transients: [String] = []
    /// Open double-run episodes ("vm@nodes"), so a lasting one is reported once.
    private var openEpisodes: [String: (first: Double, samples: Int)] = [:]
    private var lastToken: [String: UInt64] = [:]
    /// Each disk's lockspace file (inode) and lockd holders at the last snapshot.
    private var lastLockd: [String: String] = [:]
    private var reportedLease: Set<String> = []

    init(hypervisors: ChaosHypervisors, leases: ChaosLeases, log: ChaosLog, periodMs: Int) {
        self.hypervisors = hypervisors
        self.leases = leases
        self.log = log
        self.periodSeconds = Double(periodMs) / 1000
    }

    func start() {
        ChaosThreads.spawn("chaos-sampler") { [self] in loop() }
    }

    /// Stops sampling; waits at most 20 s for the current snapshot.
    func stop() {
        lock.withLock { stopRequested = true }
        _ = finished.wait(timeout: .now() + 20)
    }

    /// A consistent copy of what was recorded so far.
    func results() -> (samples: Int, intervals: [Double], durations: [Double], violations: [ChaosViolation], transients: [String]) {
        lock.withLock { (samples, intervals, durations, violations, transients) }
    }

    private var stopping: Bool { lock.withLock { stopRequested } }

    private func record(_ v: ChaosViolation) {
        lock.withLock { violations.append(v) }
        log.event("VIOLATION \(v.kind): \(v.detail)")
    }

    private func loop() {
        var previousStart: Date?
        while !stopping {
            let start = Date()
            let (views, duration) = hypervisors.snapshot()
            checkDoubleRuns(views)
            checkLeases()
            lock.withLock {
                samples += 1
                durations.append(duration)
                if let previousStart { intervals.append(start.timeIntervalSince(previousStart)) }
            }
            previousStart = start
            let left = periodSeconds - Date().timeIntervalSince(start)
            if left > 0 { Thread.sleep(forTimeInterval: left) }
        }
        finished.signal()
    }

    private func checkDoubleRuns(_ views: [Int: [String: String]?]) {
        let suspects = ChaosHypervisors.running(views).filter { $0.value.count > 1 }
        var seen = Set<String>()
        for (name, nodes) in suspects.sorted(by: { $0.key < $1.key }) {
            let again = hypervisors.snapshot(nodes).views
            let still = nodes.filter { again[$0]??[name] == "running" }
            let key = "\(name)@\(still.map(String.init).joined(separator: ","))"
            if still.count > 1 {
                seen.insert(key)
                let isNew = lock.withLock { () -> Bool in
                    if var episode = openEpisodes[key] {
                        episode.samples += 1
                        openEpisodes[key] = episode
                        return false
                    }
                    openEpisodes[key] = (log.seconds, 1)
                    return true
                }
                if isNew {
                    let states = nodes.map { "node\($0): \(views[$0]??[name] ?? "-") then \(again[$0]??[name] ?? "-")" }.joined(separator: ", ")
                    record(ChaosViolation(kind: "double-run", round: log.round, atSeconds: log.seconds,
                                          detail: "\(name) running on nodes \(still) in two consecutive snapshots (\(states))"))
                }
            } else {
                let text = String(format: "%.2f s round %d: %@ running on nodes %@ in one snapshot, not in the re-check (%@)",
                                  log.seconds, log.round, name, "\(nodes)", nodes.map { "node\($0): \(again[$0]??[name] ?? "-")" }.joined(separator: ", "))
                lock.withLock { transients.append(text) }
                log.event("transient (unconfirmed) double-run suspect: \(text)")
            }
        }
        lock.withLock {
            for (key, episode) in openEpisodes where !seen.contains(key) {
                openEpisodes[key] = nil
                log.event(String(format: "double-run episode %@ ended (%d confirmed samples, from %.2f s)", key, episode.samples, episode.first))
            }
        }
    }

    /// Exclusive leases with more than one holder in any node's persisted state, a lease token
    /// that went down in a node's view, and a lockspace file locked from two nodes.
    private func checkLeases() {
        for i in 1...leases.nodes {
            guard let state = leases.state(i) else { continue }
            for lease in state.leases.values {
                if lease.mode == .exclusive && lease.holders.count > 1 {
                    let key = "holders:\(i):\(lease.disk):\(lease.token)"
                    if lock.withLock({ reportedLease.insert(key).inserted }) {
                        record(ChaosViolation(kind: "lease-holders", round: log.round, atSeconds: log.seconds,
                                              detail: "node\(i)'s state: exclusive lease on \(lease.disk) has holders \(lease.holders) (token \(lease.token))"))
                    }
                }
                let key = "\(i):\(lease.disk)"
                let previous = lock.withLock { () -> UInt64? in
                    defer { lastToken[key] = max(lastToken[key] ?? 0, lease.token) }
                    return lastToken[key]
                }
                if let previous, lease.token < previous {
                    record(ChaosViolation(kind: "lease-token", round: log.round, atSeconds: log.seconds,
                                          detail: "node\(i)'s state: lease token of \(lease.disk) went down from \(previous) to \(lease.token)"))
                }
            }
        }
        let holders = leases.lockdHolders()
        for (disk, nodes) in holders where nodes.count > 1 {
            record(ChaosViolation(kind: "lease-holders", round: log.round, atSeconds: log.seconds,
                                  detail: "lockd lease of \(disk) locked from nodes \(nodes) at once"))
        }
        // The lockd leases' story, for the log: every change of file or holder.
        for (disk, inode) in leases.lockspaceInodes() {
            let now = "\(inode.map { "inode \($0)" } ?? "no file") locked from \(holders[disk] ?? [])"
            let before = lock.withLock { () -> String? in
                defer { lastLockd[disk] = now }
                return lastLockd[disk]
            }
            if let before, before != now { log.event("lockd lease \((disk as NSString).lastPathComponent): \(before) → \(now)") }
        }
    }
}
