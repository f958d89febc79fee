import CorralAgent
import CorralCore
import CorralTestbed
import Foundation
import Synchronization

/// What the real-cluster benches (`drain-real`, `failover`) share: which cluster they use,
/// teardown on interrupt, operator requests with retries, a cheap virsh poller and log parsing.
enum RealCluster {
    /// CORRAL_CLUSTER_ID (0–9, default 0) and CORRAL_CLUSTER_DIR (default /run/corral-bench-real).
    static var id: Int { ProcessInfo.processInfo.environment["CORRAL_CLUSTER_ID"].flatMap { Int($0) } ?? 0 }
    static var base: String { ProcessInfo.processInfo.environment["CORRAL_CLUSTER_DIR"] ?? "/run/corral-bench-real" }

    /// Brings a fresh cluster up and makes sure it is torn down on SIGINT/SIGTERM/SIGHUP too.
    static func up(nodes: Int, fenceAgent: Bool, memoryMiB: Int?, token: Int = 1000) throws(ClusterError) -> LocalCluster {
        Teardown.watch(LocalCluster(id: id, base: base, nodes: nodes))
        return try LocalCluster.up(id: id, base: base, nodes: nodes, hypervisor: .libvirt, token: token,
                                   fenceAgent: fenceAgent, memoryMiB: memoryMiB)
    }

    /// Tears the cluster down; with `--save-logs DIR` first copies every node's logs to
    /// DIR/LABEL-nI-*.log.
    static func down(_ cluster: LocalCluster, saveLogs dir: String? = nil, label: String = "cluster") {
        if let dir {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for i in 1...cluster.nodes {
                var names = ["corrald.log", "corosync.log", "libvirtd.log", "virtlockd.log", "watchdog.log"]
                let qemuLogs = (try? FileManager.default.contentsOfDirectory(atPath: "\(cluster.base)/n\(i)/libvirt/log/qemu")) ?? []
                names += qemuLogs.filter { $0.hasSuffix(".log") }.map { "libvirt/log/qemu/" + $0 }
                for name in names {
                    let text = cluster.file(i, name)
                    let flat = name.replacingOccurrences(of: "libvirt/log/qemu/", with: "qemu-")
                    if !text.isEmpty { try? text.write(toFile: "\(dir)/\(label)-n\(i)-\(flat)", atomically: true, encoding: .utf8) }
                }
            }
        }
        cluster.down()
        Teardown.watch(nil)
    }

    /// Sends an operator request to node `i`, retrying while the cluster is between memberships
    /// or syncing; returns the reply text or throws the refusal.
    @discardableResult
    static func operate(_ cluster: LocalCluster, _ i: Int, _ request: OperatorRequest, seconds: Double = 60) throws(ClusterError) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no answer"
        while Date() < deadline {
            switch cluster.request(i, OperatorRequestLine(request)) {
            case let .reply(.done(text))?: return text
            case let .reply(.refused(text))?:
                last = text
                guard text.contains("retry") || text.contains("no quorum") else { throw ClusterError("node\(i) refused \(request): \(text)") }
            case let .error(text)?: last = text
            default: break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw ClusterError("node\(i) did not apply \(request) within \(Int(seconds)) s: \(last)")
    }

    static func config(_ cluster: LocalCluster, _ i: Int, _ settings: [(String, String)]) throws(ClusterError) {
        for (key, value) in settings { try operate(cluster, i, .setConfig(key: key, value: value)) }
    }

    /// `corosync-cmapctl -g runtime.config.totem.token` in node `i`.
    static func token(_ cluster: LocalCluster, _ i: Int) -> String {
        let out = cluster.exec(i, ["corosync-cmapctl", "-g", "runtime.config.totem.token"]).output
        return out.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
    }

    /// What to look at when the cluster stops making progress: Corral's unfinished migrations,
    /// whether each libvirtd answers (5 s), and the state and kernel wait channel of every
    /// libvirtd thread and QEMU process of each node (a hung libvirtd accepts connections but
    /// answers nothing; a child it forked to exec QEMU can hang before the exec).
    static func diagnostics(_ cluster: LocalCluster) -> String {
        var out: [String] = []
        for i in 1...cluster.nodes {
            if let r = cluster.status(i, timeoutSeconds: 10) {
                let open = r.migrations.filter { $0.state == "queued" || $0.state == "running" }
                out.append("node\(i): corrald answers; unfinished migrations: " + (open.isEmpty ? "none" : open.map {
                    "#\($0.id) \($0.vm) \($0.from)→\($0.to) \($0.purpose) \($0.state) \($0.percent.map { "\($0)%" } ?? "-") bw \($0.bandwidthMiBps)"
                }.joined(separator: "; ")))
            } else {
                out.append("node\(i): corrald does not answer")
            }
            let list = cluster.exec(i, ["timeout", "5", "virsh", "-c", "qemu:///system", "list", "--all"])
            out.append("node\(i): virsh list --all (5 s) exit \(list.status): " + list.output.split(separator: "\n").joined(separator: " | "))
            let netns = (try? String(contentsOfFile: "\(cluster.base)/n\(i)/netns-inode", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int.init).filter { pid in
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")) == "net:[\(netns)]"
            }
            for pid in pids.sorted() {
                let comm = ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
                // Every process of the node but Corosync and Corral's own: libvirtd, virtlockd,
                // QEMU, and a forked child of libvirtd that has not exec'd QEMU yet.
                guard comm != "corosync" && comm != "corrald" && comm != "timeout" && comm != "virsh" && comm != "nsenter" else { continue }
                let tasks = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }
                let threads = tasks.map { tid -> String in
                    let stat = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8)) ?? ""
                    let state = stat.components(separatedBy: ") ").last?.prefix(1) ?? "?"
                    let name = ((try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/comm", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
                    let wchan = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/wchan", encoding: .utf8)) ?? "?"
                    return "\(tid) \(name) \(state) \(wchan)"
                }
                let cmd = ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").replacingOccurrences(of: "\0", with: " ")
                let guest = cmd.components(separatedBy: "guest=").dropFirst().first?.split(separator: ",").first.map(String.init) ?? ""
                out.append("node\(i): \(comm) \(pid) \(guest): " + threads.joined(separator: "; "))
            }
        }
        return out.joined(separator: "\n")
    }

    // MARK: corrald logs

    /// corrald's log timestamps: UTC with milliseconds ("2025-01-31T12:34:56.789Z").
    static func timestamp(_ line: Substring) -> Date? {
        guard let space = line.firstIndex(of: " ") else { return nil }
        return try? Date(String(line[..<space]), strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Node `i`'s corrald log lines stamped at or after `since`, with their times.
    static func logLines(_ cluster: LocalCluster, _ i: Int, since: Date) -> [(Date, Substring)] {
        cluster.file(i, "corrald.log").split(separator: "\n").compactMap { line in
            guard let t = timestamp(line), t >= since else { return nil }
            return (t, line)
        }
    }

    // MARK: statistics

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func ms(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }

    static func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
}

/// Options of a bench subcommand: `--name VALUE` and `--flag`.
struct BenchOptions {
    var args: [String]
    func value(_ name: String) -> String? {
        guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count else { return nil }
        return args[i + 1]
    }
    func int(_ name: String, default fallback: Int, min: Int = 1) -> Int {
        guard let text = value(name) else { return fallback }
        guard let n = Int(text), n >= min else {
            FileHandle.standardError.write(Data("corral-bench: --\(name) takes a whole number ≥ \(min), not \(text)\n".utf8))
            exit(2)
        }
        return n
    }
    func flag(_ name: String) -> Bool { args.contains("--" + name) }
}

/// Tears the bench's cluster down when the bench is interrupted. The signal handler only writes
/// a byte to a pipe; a thread waiting on it runs `local-cluster down` and exits 130. (A caught
/// signal resets to the default in exec'd children, so the daemons the cluster starts keep
/// their normal SIGINT/SIGTERM handling, unlike SIG_IGN or a blocked mask.)
enum Teardown {
    private static let current = Mutex<LocalCluster?>(nil)
    private static let installed = Mutex(false)

    static func watch(_ cluster: LocalCluster?) {
        current.withLock { $0 = cluster }
        let first = installed.withLock { done in defer { done = true }; return !done }
        guard first else { return }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        teardownPipe = fds[1]
        let readEnd = fds[0]
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { sig in
                var byte = UInt8(truncatingIfNeeded: sig)
                _ = write(teardownPipe, &byte, 1)
            }
        }
        Thread.detachNewThread {
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) != 1 {}
            if let cluster = current.withLock({ $0 }) {
                FileHandle.standardError.write(Data("corral-bench: signal \(byte); tearing down cluster \(cluster.id) in \(cluster.base)\n".utf8))
                cluster.down()
            }
            exit(130)
        }
    }
}

nonisolated(unsafe) private var teardownPipe: Int32 = -1

/// A long-lived `virsh` shell inside one node: each query costs one libvirt RPC instead of a
/// `local-cluster exec` + nsenter + virsh start and connect (tens of ms of CPU on a loaded
/// 2-core machine), so it can be polled every few tens of milliseconds.
final class VirshSession: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer: [UInt8] = []
    /// virsh's shell echoes commands (readline); the marker is typed split so that only
    /// virsh's own `echo` output contains it whole.
    private static let marker = Array("@@CORRAL-END@@".utf8)

    init?(_ cluster: LocalCluster, node: Int) {
        process.executableURL = URL(fileURLWithPath: LocalCluster.script)
        process.arguments = ["exec", "\(node)", "virsh", "-q", "-c", "qemu:///system"]
        var env = ProcessInfo.processInfo.environment
        env["CORRAL_CLUSTER_DIR"] = cluster.base
        env["CORRAL_CLUSTER_ID"] = "\(cluster.id)"
        env["TERM"] = "dumb"
        process.environment = env
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        do { try process.run() } catch { return nil }
        guard runningGuests(timeoutSeconds: 10) != nil else { close(); return nil }
    }

    /// `virsh list --state-running --name`: running guests (a guest still starting or
    /// receiving a migration is paused, not running); nil if virsh did not answer in time.
    func runningGuests(timeoutSeconds: Double = 5) -> Set<String>? {
        let command = "list --state-running --name\necho @@CORRAL-\"\"END@@\n"
        do { try input.fileHandleForWriting.write(contentsOf: Data(command.utf8)) } catch { return nil }
        let fd = output.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while true {
            if let range = find(Self.marker) {
                let text = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<range.upperBound)
                return Set(text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty && !$0.contains(" ") && !$0.contains("#") })
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return nil }
            buffer += chunk[0..<n]
        }
    }

    private func find(_ needle: [UInt8]) -> Range<Int>? {
        guard buffer.count >= needle.count else { return nil }
        for start in 0...(buffer.count - needle.count) where buffer[start] == needle[0] {
            if Array(buffer[start..<start + needle.count]) == needle { return start..<start + needle.count }
        }
        return nil
    }

    func close() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
