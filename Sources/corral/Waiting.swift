import CorralAgent
import CorralCore
import Foundation

/// `--wait`: polls corrald's status twice a second and shows one progress line until the
/// operation has finished, failed, or the timeout passed (exit 0, 1, 1). With `live` false
/// (--json) nothing is printed: the caller prints the outcome.
enum Waiting {
    static let pollMs: UInt32 = 500

    /// How a wait ended: `result` is done, failed or timeout.
    struct Outcome: Encodable {
        var result: String
        var message: String
        var exitStatus: Int32 { result == "done" ? ExitStatus.ok : ExitStatus.failed }
        private enum CodingKeys: String, CodingKey { case result, message }
    }

    static func until(_ operation: OperatorRequest, _ socket: String, timeoutSeconds: Int, live: Bool) throws(UsageError) -> Outcome {
        func poll(_ judge: (StatusReport) -> Verdict) throws(UsageError) -> Outcome {
            try Self.poll(socket, timeoutSeconds, live: live, judge)
        }
        switch operation {
        case let .drainNode(node):
            return try poll { r in
                guard let row = r.nodes.first(where: { $0.name == node }) else { return .failed("node \(node) is gone") }
                if row.state == "drained" { return .done("\(node) is drained") }
                if row.state != "draining" {
                    return .failed("drain of \(node) stopped:\n  " + (row.drainFailures.isEmpty ? [row.state] : row.drainFailures).joined(separator: "\n  "))
                }
                return .waiting("draining \(node): \(row.vms) VMs left; " + migrationSummary(r))
            }
        case let .resumeNode(node, failback: true):
            return try poll { r in
                let active = r.migrations.filter { $0.to == node && $0.purpose == "failback" && isActive($0) }
                return active.isEmpty ? .done("failback to \(node) finished") : .waiting("failing back to \(node): " + migrationSummary(r))
            }
        case let .moveVM(vm, _):
            return try poll { r in
                guard let job = r.migrations.last(where: { $0.vm == vm }) else { return .done("\(vm) moved") }
                switch job.state {
                case "succeeded": return .done("\(vm) now runs on \(job.to) (downtime \(job.downtimeMs) ms)")
                case "failed": return .failed("moving \(vm) failed: \(job.failure)")
                default: return .waiting("moving \(vm): " + describe(job))
                }
            }
        case let .addVM(spec, start: true):
            return try until(.startVM(spec.name), socket, timeoutSeconds: timeoutSeconds, live: live)
        case let .startVM(vm):
            return try poll { r in
                guard let row = r.vms.first(where: { $0.name == vm }) else { return .failed("VM \(vm) is gone") }
                switch row.state {
                case "running": return .done("\(vm) runs on \(row.node)")
                case "failed", "stopped": return .failed("\(vm) is \(row.state): \(row.reason)")
                default: return .waiting("\(vm) is \(row.state)\(row.reason.isEmpty ? "" : ": \(row.reason)")")
                }
            }
        case let .stopVM(vm):
            return try poll { r in
                guard let row = r.vms.first(where: { $0.name == vm }) else { return .done("\(vm) is gone") }
                return row.state == "stopped" ? .done("\(vm) is stopped") : .waiting("\(vm) is \(row.state)")
            }
        case let .createDisk(volume, disk, _, _), let .resizeDisk(volume, disk, _), let .deleteDisk(volume, disk):
            return try poll { r in diskVerdict(r, volume: volume, disk: disk, gone: { if case .deleteDisk = operation { true } else { false } }()) }
        case let .moveVolume(volume, to):
            return try poll { r in
                guard let row = r.volumes?.first(where: { $0.name == volume }) else { return .failed("volume \(volume) is gone") }
                if row.coordinator == to { return .done("\(to) coordinates volume \(volume)") }
                if row.handoffTo == to { return .waiting("\(row.coordinator ?? "-") hands volume \(volume) over to \(to) once its operations end") }
                return .failed("the move of volume \(volume) to \(to) was called off; \(row.coordinator ?? "no node") coordinates it")
            }
        default:
            return Outcome(result: "done", message: "nothing to wait for")
        }
    }

    static func forMigrations(_ socket: String, timeoutSeconds: Int, live: Bool) throws(UsageError) -> Outcome {
        try poll(socket, timeoutSeconds, live: live) { r in
            r.migrations.contains(where: isActive) ? .waiting(migrationSummary(r)) : .done("no migrations queued or running")
        }
    }

    enum Verdict {
        case waiting(String), done(String), failed(String)
    }

    private static func poll(_ socket: String, _ timeoutSeconds: Int, live printing: Bool, _ judge: (StatusReport) -> Verdict) throws(UsageError) -> Outcome {
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds))
        let live = printing && isatty(1) == 1
        var last = ""
        func finish(_ outcome: Outcome) -> Outcome {
            if live && !last.isEmpty { print("") }
            if outcome.result == "done" {
                if printing { print(outcome.message) }
            } else {
                _ = ClusterCommands.fail(outcome.message)
            }
            return outcome
        }
        while Date() < deadline {
            guard case let .status(report) = try ClusterCommands.send(.status, socket) else {
                return finish(Outcome(result: "failed", message: "corrald did not answer with its status"))
            }
            switch judge(report) {
            case let .done(text): return finish(Outcome(result: "done", message: text))
            case let .failed(text): return finish(Outcome(result: "failed", message: text))
            case let .waiting(text) where text != last:
                if live { FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + text).utf8)) } else if printing { print(text) }
                last = text
            case .waiting:
                break
            }
            usleep(pollMs * 1000)
        }
        return finish(Outcome(result: "timeout", message: "still not done after \(timeoutSeconds) s (it goes on; watch it with corral status or corral monitor)"))
    }

    /// A disk operation is over once the volume lists none for the disk: done unless the
    /// volume's failures name the disk.
    static func diskVerdict(_ r: StatusReport, volume: String, disk: String, gone: Bool) -> Verdict {
        guard let row = r.volumes?.first(where: { $0.name == volume }) else { return .failed("volume \(volume) is gone") }
        if let op = row.operations.first(where: { $0.disk == disk }) {
            return .waiting("\(op.description): waiting for \(row.coordinator ?? "a coordinator")")
        }
        if let failure = row.failures.last(where: { $0.hasPrefix("\(disk): ") }) { return .failed("\(volume)/\(failure)") }
        if gone { return .done("disk \(volume)/\(disk) deleted") }
        guard let d = row.disks.first(where: { $0.name == disk }) else { return .failed("disk \(volume)/\(disk) is gone") }
        return .done("disk \(volume)/\(disk): \(d.sizeMiB) MiB \(d.format) at \(d.path)")
    }

    static func isActive(_ m: StatusReport.MigrationRow) -> Bool { m.state == "queued" || m.state == "running" }

    static func migrationSummary(_ r: StatusReport) -> String {
        let running = r.migrations.filter { $0.state == "running" }
        let queued = r.migrations.filter { $0.state == "queued" }.count
        return "\(running.count) running, \(queued) queued" + (running.isEmpty ? "" : ": " + running.map(describe).joined(separator: "; "))
    }

    static func describe(_ m: StatusReport.MigrationRow) -> String {
        var text = "\(m.vm) \(m.from)→\(m.to) \(m.state)"
        if let percent = m.percent { text += " \(percent)%" }
        if let rate = m.rateMiBps { text += " \(rate) MiB/s" }
        if let eta = m.etaSeconds { text += " eta \(eta) s" }
        return text
    }
}
