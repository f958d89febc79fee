import CorralAgent
import CorralCore
import Foundation

/// `corral patch run|status|report|abort`: cluster-aware patching (Docs/patching.md).
enum PatchCommands {
    static func run(_ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        // --keep-running may be given many times; Arguments takes each option once.
        var rest: [String] = []
        var keepRunning: [String: Int] = [:]
        var it = raw.makeIterator()
        while let arg = it.next() {
            guard arg == "--keep-running" || arg.hasPrefix("--keep-running=") else { rest.append(arg); continue }
            let value = arg == "--keep-running" ? it.next() : String(arg.dropFirst("--keep-running=".count))
            guard let value, let eq = value.firstIndex(of: "="), let count = Int(value[value.index(after: eq)...]), count >= 1,
                  eq != value.startIndex else {
                throw UsageError("--keep-running takes GROUP=N (an anti-affinity class and a count ≥ 1)")
            }
            keepRunning[String(value[..<eq])] = count
        }
        var args = try Arguments(rest[...], flags: ["json", "what-if", "require-all-online", "force-recover"])
        let socket = ClusterCommands.socket(&args)
        let json = args.flag("json")
        switch args.words {
        case ["run"]:
            let request = try patchRequest(&args, keepRunning: keepRunning)
            let whatIf = args.flag("what-if")
            try args.rejectUnknown()
            return ClusterCommands.printReply(try ClusterCommands.send(.operate(.startPatchRun(request), whatIf: whatIf), socket), json: json)
        case ["abort"]:
            let force = args.flag("force-recover")
            try args.rejectUnknown()
            return ClusterCommands.printReply(try ClusterCommands.send(.operate(.abortPatchRun(forceRecover: force), whatIf: false), socket), json: json)
        case ["status"], ["report"]:
            try args.rejectUnknown()
            guard keepRunning.isEmpty else { throw UsageError("--keep-running belongs to corral patch run") }
            let detailed = args.words == ["report"]
            switch try ClusterCommands.send(.status, socket) {
            case let .status(status):
                guard let view = PatchRunView(status) else { return ClusterCommands.fail("no patch run has been started in this cluster") }
                if json { ClusterCommands.printJSON(view) } else { detailed ? printReport(view) : printStatus(view) }
                return ExitStatus.ok
            case let .error(text): return ClusterCommands.fail(text)
            case .reply, .events: return ClusterCommands.fail("unexpected reply to a status request")
            }
        default:
            throw UsageError("usage: corral patch run --hook CMD [options] | patch status [--json] | patch report [--json] | patch abort [--force-recover]")
        }
    }

    private static func patchRequest(_ args: inout Arguments, keepRunning: [String: Int]) throws(UsageError) -> PatchRequest {
        guard let hook = args.option("hook"), !hook.isEmpty else { throw UsageError("corral patch run needs --hook CMD") }
        var order: [String] = []
        if let text = args.option("order"), text != "fewest-vms" {
            order = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if order.contains(where: \.isEmpty) { throw UsageError("--order takes fewest-vms or NODE,NODE,…, not \(text)") }
        }
        let failback: Bool
        switch args.option("failback") ?? "immediate" {
        case "immediate": failback = true
        case "none": failback = false
        case let other: throw UsageError("--failback takes immediate or none, not \(other)")
        }
        let timeout = try args.option("reboot-timeout").map { text throws(UsageError) in try duration(text, option: "reboot-timeout") }
        let options = PatchOptions(hook: hook, pre: args.option("pre"), post: args.option("post"), maxFailed: try args.int("max-failed"),
                                   retries: try args.int("retries", default: 3)!, rebootTimeoutMs: timeout ?? 15 * 60_000,
                                   failback: failback, requireAllOnline: args.flag("require-all-online"), keepRunning: keepRunning)
        return PatchRequest(options, order: order)
    }

    /// "90s", "15m", "1h", "500ms", or whole seconds; more than 0 and at most a day.
    static func duration(_ text: String, option: String) throws(UsageError) -> Int {
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        let unit = units.first { text.hasSuffix($0.0) && Int(text.dropLast($0.0.count)) != nil } ?? ("", 1000)
        guard let count = Int(text.dropLast(unit.0.count)), count > 0, count <= 86_400_000 / unit.1 else {
            throw UsageError("--\(option) takes a duration such as 90s, 15m or 1h (more than 0, at most 24h), not \(text)")
        }
        return count * unit.1
    }

    // MARK: human output

    static func printStatus(_ view: PatchRunView) {
        print("patch run \(view.id): \(view.state)\(view.outcome.isEmpty ? "" : " — \(view.outcome)")  (driven by the coordinator: \(view.coordinator ?? "none"))")
        ClusterCommands.table(["NODE", "STEP", "ATTEMPT", "VMS MOVED", "REASON"], view.nodes.map {
            [$0.name, $0.step, "\($0.attempt)", "\($0.moved.count)", $0.reason]
        })
        if !view.migrations.isEmpty {
            print("")
            print("migrations under way:")
            ClusterCommands.printMigrations(view.migrations)
        }
    }

    static func printReport(_ view: PatchRunView) {
        printStatus(view)
        for node in view.nodes {
            print("")
            print("\(node.name): \(node.step)\(node.reason.isEmpty ? "" : " (\(node.reason))")")
            for mark in node.steps { print("  \(mark.step) (attempt \(mark.attempt)): \(mark.durationMs.map { "\($0) ms" } ?? "until now")") }
            for move in node.moved { print("  moved \(move.vm) to \(move.to), downtime \(move.downtimeMs) ms") }
            for move in node.returned { print("  failback brought \(move.vm) back, downtime \(move.downtimeMs) ms") }
            for hook in node.hooks {
                print("  \(hook.phase) hook, attempt \(hook.attempt): exit \(hook.status) after \(hook.durationMs) ms")
                for line in hook.outputTail.split(separator: "\n") { print("    | \(line)") }
            }
        }
        print("")
        print("total downtime of the VMs moved and brought back: \(view.totalDowntimeMs) ms")
    }
}

/// The patch run as `corral patch status|report --json` prints it: names instead of ids, and
/// each step's duration from the run's timeline.
struct PatchRunView: Encodable {
    struct Step: Encodable {
        var step: String
        var attempt: Int
        var at: Int64
        /// Until the next step began; nil for the step in progress or the last one.
        var durationMs: Int64?
    }
    struct Move: Encodable {
        var vm: String
        var to: String
        var downtimeMs: Int
    }
    struct Hook: Encodable {
        var phase: String
        var attempt: Int
        var status: Int
        var durationMs: Int
        var outputTail: String
    }
    struct NodeView: Encodable {
        var name: String
        var step: String
        var attempt: Int
        var reason: String
        var steps: [Step]
        var moved: [Move]
        var returned: [Move]
        var hooks: [Hook]
    }
    var id: Int
    var state: String
    var outcome: String
    var coordinator: String?
    var options: PatchOptions
    var nodes: [NodeView]
    var migrations: [StatusReport.MigrationRow]
    var totalDowntimeMs: Int

    init?(_ status: StatusReport) {
        guard let run = status.patchRun else { return nil }
        let names = Dictionary(uniqueKeysWithValues: status.nodes.map { ($0.id, $0.name) })
        func move(_ m: PatchMove) -> Move { Move(vm: m.vm, to: names[m.to] ?? "node\(m.to)", downtimeMs: m.downtimeMs) }
        id = run.id
        state = run.state.rawValue
        outcome = run.outcome
        coordinator = status.coordinator
        options = run.options
        nodes = run.nodes.map { progress in
            let marks = progress.timeline
            let steps = marks.indices.map { i in
                Step(step: marks[i].step.rawValue, attempt: marks[i].attempt, at: marks[i].at,
                     durationMs: i + 1 < marks.count ? marks[i + 1].at - marks[i].at : nil)
            }
            return NodeView(name: names[progress.node] ?? "node\(progress.node)", step: progress.step.rawValue, attempt: progress.attempt,
                            reason: progress.reason, steps: steps,
                            moved: progress.moved.map(move), returned: progress.returned.map(move),
                            hooks: progress.hooks.map { Hook(phase: $0.phase.rawValue, attempt: $0.attempt, status: $0.result.status,
                                                             durationMs: $0.result.durationMs, outputTail: $0.result.outputTail) })
        }
        migrations = status.migrations.filter { $0.state == "queued" || $0.state == "running" }
        totalDowntimeMs = run.nodes.flatMap { $0.moved + $0.returned }.reduce(0) { $0 + $1.downtimeMs }
    }
}
