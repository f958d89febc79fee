import CorralAgent
import CorralCore
import Foundation

/// The commands that talk to the local corrald over its control socket.
enum ClusterCommands {
    static let defaultSocket = "/run/corral/corral.sock"

    /// --socket, else $CORRAL_SOCKET, else the default.
    static func socket(_ args: inout Arguments) -> String {
        args.option("socket") ?? ProcessInfo.processInfo.environment["CORRAL_SOCKET"] ?? defaultSocket
    }

    static func run(_ command: String, _ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        var args = try Arguments(raw, flags: ["json", "what-if", "no-ha", "stopped", "failback", "wait", "shared", "local", "force"])
        let socket = Self.socket(&args)
        let json = args.flag("json")
        let whatIf = args.flag("what-if")
        var wait = args.flag("wait")
        let timeout = try args.int("timeout", default: 900, min: 1)!
        let words = args.words
        func name(_ what: String) throws(UsageError) -> String {
            guard words.count == 2 else { throw UsageError("usage: corral \(command) \(words.first ?? "") \(what)") }
            return words[1]
        }
        let request: ControlRequest
        switch (command, words.first) {
        case ("status", nil):
            try args.rejectUnknown()
            return try show(socket, json: json) { printStatus($0) }
        case ("vm", "list"?):
            try args.rejectUnknown()
            return try show(socket, json: json, select: \.vms) { printVMs($0) }
        case ("node", "list"?):
            try args.rejectUnknown()
            return try show(socket, json: json, select: \.nodes) { printNodes($0) }
        case ("migrations", nil):
            try args.rejectUnknown()
            if wait {
                let outcome = try Waiting.forMigrations(socket, timeoutSeconds: timeout, live: !json)
                if json { printJSON(outcome) }
                return outcome.exitStatus
            }
            return try show(socket, json: json, select: \.migrations) { printMigrations($0) }
        case ("vm", "add"?):
            let vmName = try name("NAME --memory MIB")
            guard let memory = try args.int("memory", min: 1) else { throw UsageError("vm add needs --memory MIB") }
            let priorityText = args.option("priority") ?? "medium"
            guard let priority = Priority(rawValue: priorityText) else { throw UsageError("--priority takes high, medium or low, not \(priorityText)") }
            let spec = VMSpec(name: vmName, memoryMiB: memory, vcpus: try args.int("vcpus", default: 1, min: 1)!, priority: priority,
                              preferredOwners: args.option("preferred").map { $0.split(separator: ",").map(String.init) } ?? [],
                              antiAffinityClass: args.option("anti-affinity"), highlyAvailable: !args.flag("no-ha"),
                              disks: args.option("disks").map { $0.split(separator: ",").map(String.init) } ?? [])
            request = .operate(.addVM(spec, start: !args.flag("stopped")), whatIf: whatIf)
        case ("vm", "remove"?): request = .operate(.removeVM(try name("NAME")), whatIf: whatIf)
        case ("vm", "start"?): request = .operate(.startVM(try name("NAME")), whatIf: whatIf)
        case ("vm", "stop"?): request = .operate(.stopVM(try name("NAME")), whatIf: whatIf)
        case ("vm", "move"?): request = .operate(.moveVM(try name("NAME [--to NODE]"), to: args.option("to")), whatIf: whatIf)
        case ("node", "drain"?): request = .operate(.drainNode(try name("NAME")), whatIf: whatIf)
        case ("node", "pause"?): request = .operate(.pauseNode(try name("NAME")), whatIf: whatIf)
        case ("node", "resume"?): request = .operate(.resumeNode(try name("NAME [--failback]"), failback: args.flag("failback")), whatIf: whatIf)
        case ("volume", "list"?):
            try args.rejectUnknown()
            return try show(socket, json: json, select: { $0.volumes ?? [] }) { StorageCommands.printVolumes($0.volumes ?? []) }
        case ("volume", "show"?), ("disk", "list"?):
            let volume = words.count == 2 ? words[1] : nil
            guard words.count <= 2, volume != nil || words[0] == "list" else { throw UsageError("usage: corral volume show NAME | disk list [VOLUME]") }
            try args.rejectUnknown()
            guard case let .status(report) = try send(.status, socket) else { return fail("corrald did not answer with its status") }
            let rows = (report.volumes ?? []).filter { volume == nil || $0.name == volume }
            if let volume, rows.isEmpty { return fail(VolumeValidation.unknownVolume(volume)) }
            if json { words[0] == "show" ? printJSON(rows[0]) : printJSON(rows.flatMap(\.disks)) } else if words[0] == "show" {
                StorageCommands.printVolume(rows[0])
            } else {
                StorageCommands.printDisks(rows)
            }
            return 0
        case ("volume", _?), ("disk", _?):
            let operation = try StorageCommands.request(command, words, &args)
            wait = wait || StorageCommands.waitsForOutcome(operation)
            request = .operate(operation, whatIf: whatIf)
        case ("config", "set"?):
            guard words.count == 3 else { throw UsageError("usage: corral config set KEY VALUE (keys: \(RequestPlanner.configKeys.joined(separator: ", ")))") }
            request = .operate(.setConfig(key: words[1], value: words[2]), whatIf: whatIf)
        default:
            throw UsageError("unknown command: corral \(command) \(words.joined(separator: " ")) (corral --help lists the commands)")
        }
        try args.rejectUnknown()
        let response = try send(request, socket)
        if wait, case let .reply(.done(text)) = response, case let .operate(operation, false) = request {
            if !json { print(text) }
            let outcome = try Waiting.until(operation, socket, timeoutSeconds: timeout, live: !json)
            if json { printJSON(OperationOutput(result: "done", message: text, wait: outcome)) }
            return outcome.exitStatus
        }
        return printReply(response, json: json)
    }

    /// Prints corrald's answer to a change; the exit status follows it (refused: 1).
    static func printReply(_ response: ControlResponse, json: Bool) -> Int32 {
        switch response {
        case let .reply(.done(text)):
            if json { printJSON(OperationOutput(result: "done", message: text)) } else { print(text) }
        case let .reply(.plan(lines)):
            if json { printJSON(OperationOutput(result: "plan", plan: lines)) } else {
                print("what-if (nothing was changed):"); lines.forEach { print("  \($0)") }
            }
        case let .reply(.refused(text)):
            if json { printJSON(OperationOutput(result: "refused", message: text)) }
            return fail(text)
        case let .error(text):
            if json { printJSON(OperationOutput(result: "error", message: text)) }
            return fail(text)
        case .status, .events: return fail("unexpected reply to a change")
        }
        return ExitStatus.ok
    }

    /// What a change prints with --json: one object. `result` is done, plan, refused or error;
    /// `wait` is --wait's verdict.
    struct OperationOutput: Encodable {
        var result: String
        var message: String?
        var plan: [String]?
        var wait: Waiting.Outcome?
    }

    static func printJSON<T: Encodable>(_ value: T) {
        print(String(decoding: JSONCoding.encode(value), as: UTF8.self))
    }

    /// One request and its reply. A socket that cannot be reached is exit status 3.
    static func send(_ request: ControlRequest, _ socket: String) throws(UsageError) -> ControlResponse {
        let bytes: [UInt8]
        do { bytes = try ControlSocketClient.request(path: socket, line: JSONCoding.encode(request), timeoutSeconds: 30) } catch {
            if case .pathTooLong = error { throw UsageError("--socket: \(error)") }
            throw UsageError.unreachable("\(error)", socket: socket)
        }
        if let response = try? JSONCoding.decode(ControlResponse.self, from: bytes) { return response }
        // The socket layer itself answers refusals (e.g. permission denied) as {"ok":false,"error":…}.
        if let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], let error = object["error"] as? String {
            return .error(error)
        }
        throw UsageError.unreachable("unreadable reply from corrald (is this corral the same version as corrald?): \(String(decoding: bytes.prefix(200), as: UTF8.self))", socket: socket)
    }

    private static func show(_ socket: String, json: Bool, _ print: (StatusReport) -> Void) throws(UsageError) -> Int32 {
        try show(socket, json: json, select: { $0 }, print)
    }

    private static func show<T: Encodable>(_ socket: String, json: Bool, select: (StatusReport) -> T, _ render: (StatusReport) -> Void) throws(UsageError) -> Int32 {
        switch try send(.status, socket) {
        case let .status(report):
            if json { printJSON(select(report)) } else { render(report) }
            return 0
        case let .error(text):
            if json { printJSON(OperationOutput(result: "error", message: text)) }
            return fail(text)
        case .reply, .events: return fail("unexpected reply to a status request")
        }
    }

    static func fail(_ text: String) -> Int32 {
        FileHandle.standardError.write(Data("corral: \(text)\n".utf8))
        return ExitStatus.failed
    }

    // MARK: human output

    static func printStatus(_ r: StatusReport) {
        print("node \(r.node) (id \(r.nodeID))  quorate: \(r.quorate ? "yes" : "NO")\(r.syncing ? "  (syncing)" : "")  coordinator: \(r.coordinator ?? "-")")
        print("members: \(r.members.joined(separator: " "))  epoch \(r.epoch)  version \(r.version)  digest \(r.digest)")
        print("")
        printNodes(r)
        print("")
        printVMs(r)
    }

    static func printNodes(_ r: StatusReport) {
        table(["NODE", "ID", "STATE", "MEMBER", "MEMORY USED", "VMS"], r.nodes.map {
            [$0.name, "\($0.id)", $0.state, $0.member ? "yes" : "no", "\($0.usedMemoryMiB)/\($0.memoryMiB) MiB", "\($0.vms)"]
        })
        for n in r.nodes where !n.drainFailures.isEmpty { print("drain of \(n.name) stopped:\n  " + n.drainFailures.joined(separator: "\n  ")) }
    }

    static func printVMs(_ r: StatusReport) {
        table(["VM", "NODE", "STATE", "MEMORY", "PRIORITY", "HA", "REASON"], r.vms.map {
            [$0.name, $0.node, $0.state, "\($0.memoryMiB) MiB", $0.priority,
             $0.highlyAvailable ? "yes" : $0.localVolumes.map { "no (local volume \($0.joined(separator: ",")))" } ?? "no", $0.reason]
        })
    }

    static func printMigrations(_ r: StatusReport) { printMigrations(r.migrations) }

    static func printMigrations(_ rows: [StatusReport.MigrationRow]) {
        table(["ID", "VM", "FROM", "TO", "PURPOSE", "STATE", "PROGRESS", "RATE", "REMAINING", "ETA", "BANDWIDTH", "DOWNTIME", "FAILURE"], rows.map {
            ["\($0.id)", $0.vm, $0.from, $0.to, $0.purpose, $0.state, $0.percent.map { "\($0)%" } ?? "-",
             $0.rateMiBps.map { "\($0) MiB/s" } ?? "-", $0.remainingMiB.map { "\($0) MiB" } ?? "-",
             $0.etaSeconds.map { "\($0) s" } ?? "-", $0.bandwidthMiBps == 0 ? "uncapped" : "\($0.bandwidthMiBps) MiB/s",
             $0.state == "succeeded" ? "\($0.downtimeMs) ms" : "-", $0.failure]
        })
    }

    /// Columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        for row in all {
            print(row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces))
        }
    }
}
