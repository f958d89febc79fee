/// What an operator (or a patch run) asks of the cluster, in names rather than ids.
public enum OperatorRequest: Codable, Sendable, Equatable {
    case addVM(VMSpec, start: Bool)
    case removeVM(String)
    case startVM(String)
    case stopVM(String)
    /// `to` nil lets placement choose.
    case moveVM(String, to: String?)
    case drainNode(String)
    case pauseNode(String)
    case resumeNode(String, failback: Bool)
    case setConfig(key: String, value: String)
    case startPatchRun(PatchRequest)
    /// Stops the running patch run; `forceRecover` clears the record of any run, touching no node.
    case abortPatchRun(forceRecover: Bool)
    /// `node` names the owner of a local volume (nil for a shared one).
    case addVolume(name: String, path: String, kind: VolumeKind, node: String?)
    case removeVolume(String)
    case setVolumeState(String, VolumeState, force: Bool)
    case moveVolume(String, to: String)
    case createDisk(volume: String, disk: String, sizeMiB: Int, format: DiskFormat)
    case resizeDisk(volume: String, disk: String, sizeMiB: Int)
    case deleteDisk(volume: String, disk: String)
}

/// The answer to a request.
public enum RequestReply: Codable, Sendable, Equatable {
    case done(String)
    case refused(String)
    /// What a `--what-if` request would do, one step per line; nothing was changed.
    case plan([String])
}

/// Turns a request into the one command that carries it out, or a specific refusal.
/// Nothing is broadcast for a refused request, so a bad request changes nothing.
public enum RequestPlanner {
    public static let configKeys = ["migration.max-per-node", "migration.max-cluster", "migration.reserve-mbps",
                                    "migration.auto-tune", "migration.stream-mbps", "migration.max-attempts",
                                    "fencing.lease-ms", "fencing.margin-ms", "fencing.grace-ms",
                                    "recovery.restarts-in-place", "recovery.max-crashes", "recovery.crash-window-ms"]

    public static func command(for request: OperatorRequest, in state: ClusterState) -> Result<Command, RequestRefusal> {
        switch request {
        case let .addVM(named, start):
            if state.vms[named.name] != nil { return .failure("a VM named \(named.name) already exists") }
            let spec: VMSpec
            switch VolumeRequests.resolvingDisks(named, in: state) {
            case let .success(resolved): spec = resolved
            case let .failure(refusal): return .failure(refusal)
            }
            if let problem = VMSpecValidation.problem(spec, state: state) { return .failure(.init(problem)) }
            return .success(.addVM(spec, running: start, dirtyRateMiBps: 0))
        case let .removeVM(name):
            guard let vm = state.vms[name] else { return .failure(unknownVM(name)) }
            guard [.stopped, .failed, .pending].contains(vm.state) else {
                return .failure("VM \(name) is \(vm.state.rawValue); stop it before removing it")
            }
            return .success(.removeVM(name))
        case let .startVM(name):
            guard state.vms[name] != nil else { return .failure(unknownVM(name)) }
            return .success(.startVM(name))
        case let .stopVM(name):
            guard let vm = state.vms[name] else { return .failure(unknownVM(name)) }
            if vm.state == .migrating { return .failure("VM \(name) is migrating; wait for the migration to end") }
            return .success(.stopVM(name))
        case let .moveVM(name, to): return move(name, to: to, state: state)
        case let .drainNode(name):
            guard let node = state.node(named: name) else { return .failure(unknownNode(name, state)) }
            guard node.health == .up else { return .failure("node \(name) is \(node.state.rawValue)") }
            if node.admin == .draining || node.admin == .drained { return .failure("node \(name) is already \(node.admin.rawValue)") }
            let plan = DrainPlanner.plan(state, node: node.id)
            if !plan.unplaceable.isEmpty {
                return .failure(.init("cannot drain \(name); nothing was changed:\n  " + plan.unplaceable.joined(separator: "\n  ")))
            }
            return .success(.drainNode(node.id))
        case let .pauseNode(name):
            guard let node = state.node(named: name) else { return .failure(unknownNode(name, state)) }
            guard node.admin == .active else { return .failure("node \(name) is \(node.admin.rawValue)") }
            return .success(.pauseNode(node.id))
        case let .resumeNode(name, failback):
            guard let node = state.node(named: name) else { return .failure(unknownNode(name, state)) }
            guard node.admin != .active || failback else { return .failure("node \(name) is not paused, draining or drained") }
            return .success(.resumeNode(node.id, failback: failback))
        case let .setConfig(key, value): return config(key, value, state: state)
        case let .startPatchRun(patch): return PatchPlanner.command(for: patch, in: state)
        case let .abortPatchRun(force):
            guard let run = state.patchRun else { return .failure("there is no patch run") }
            guard force || run.state == .running else {
                return .failure(.init("patch run \(run.id) is \(run.state.rawValue), not running (--force-recover clears its record)"))
            }
            return .success(.abortPatchRun(run: run.id, forceRecover: force))
        case .addVolume, .removeVolume, .setVolumeState, .moveVolume, .createDisk, .resizeDisk, .deleteDisk:
            return VolumeRequests.command(for: request, in: state)
        }
    }

    /// The plan a request would start, without starting it.
    public static func whatIf(_ request: OperatorRequest, in state: ClusterState) -> Result<[String], RequestRefusal> {
        if case let .startPatchRun(patch) = request { return PatchPlanner.whatIf(patch, in: state) }
        switch command(for: request, in: state) {
        case let .failure(refusal): return .failure(refusal)
        case let .success(command):
            var after = state
            if case let .refused(why) = after.apply(command) { return .failure(.init(why)) }
            var lines = ["would apply: \(describe(command, state))"]
            let decisions = Coordinator.drains(after) + Coordinator.recovery(after)
            for decision in decisions { _ = after.apply(decision) }
            for decision in decisions + MigrationScheduler.decide(after) { lines.append("then: \(describe(decision, after))") }
            return .success(lines)
        }
    }

    /// One human line per command, with names instead of ids.
    public static func describe(_ command: Command, _ state: ClusterState) -> String {
        switch command {
        case let .queueMigration(vm, to, purpose): "queue \(purpose.rawValue) migration of \(vm) to \(state.nodeName(to))"
        case let .startMigration(id, bw):
            "start migration \(id) (\(state.jobs[id].map { "\($0.vm) \(state.nodeName($0.source))→\(state.nodeName($0.destination))" } ?? "?")) at \(bw == 0 ? "uncapped" : "\(bw) MiB/s")"
        case let .place(vm, node): "start \(vm) on \(state.nodeName(node))"
        case let .declareFenced(id, method): "\(state.nodeName(id)) is fenced (\(method))"
        case let .forgiveCrashes(vm): "forgive \(vm)'s crashes: it ran a whole crash window"
        case let .drainNode(id): "drain \(state.nodeName(id))"
        case let .resumeNode(id, failback): "resume \(state.nodeName(id))\(failback ? " with failback" : "")"
        case let .moveVM(vm, to): "move \(vm) to \(state.nodeName(to))"
        case let .addVM(spec, running, _): "add VM \(spec.name) (\(spec.memoryMiB) MiB\(running ? "" : ", stopped"))"
        case let .removeVM(vm): "remove VM \(vm)"
        case let .startVM(vm): "start \(vm)"
        case let .stopVM(vm): "stop \(vm)"
        case let .pauseNode(id): "pause \(state.nodeName(id))"
        case let .setRecoverySettings(r):
            "set fencing: lease \(r.leaseMs) ms, margin \(r.marginMs) ms, grace \(r.fenceGraceMs) ms; recovery: \(r.restartsInPlace) restarts in place, failed after \(r.maxCrashes) crashes per \(r.crashWindowMs / 60_000) min"
        case let .setMigrationSettings(m):
            "set migration settings: max-per-node \(m.maxPerNode), max-cluster \(m.maxCluster), auto-tune \(m.autoTune ? "on" : "off"), reserve \(m.reserveMiBps) MiB/s, stream \(m.streamMiBps) MiB/s"
        case let .startPatchRun(run): "start patch run \(run.id) over \(run.nodes.map { state.nodeName($0.node) }.joined(separator: ", "))"
        case let .abortPatchRun(run, force): force ? "clear the record of patch run \(run)" : "abort patch run \(run)"
        case let .advancePatch(run, node, step, attempt, reason, _):
            "patch run \(run): \(state.nodeName(node)) \(step.rawValue) (attempt \(attempt))" + (reason.isEmpty ? "" : ": \(reason)")
        case let .endPatchRun(run, end, outcome): "patch run \(run) \(end.rawValue): \(outcome)"
        case .addVolume, .removeVolume, .setVolumeState, .moveVolumeCoordinator, .assignVolumeCoordinator,
             .queueDiskOperation, .diskOperationFinished, .volumeProbed:
            VolumeRequests.describe(command, state)
        default: "\(command)"
        }
    }

    private static func move(_ name: String, to: String?, state: ClusterState) -> Result<Command, RequestRefusal> {
        guard let vm = state.vms[name] else { return .failure(unknownVM(name)) }
        guard vm.state == .running, let from = vm.node else { return .failure("VM \(name) is \(vm.state.rawValue), not running") }
        if state.activeJob(for: name) != nil { return .failure("VM \(name) already has a migration queued or running") }
        let load = NodeLoad(state)
        if let to {
            guard let dest = state.node(named: to) else { return .failure(unknownNode(to, state)) }
            if dest.id == from { return .failure("VM \(name) already runs on \(to)") }
            guard dest.acceptsVMs else { return .failure("node \(to) is \(dest.state.rawValue) and takes no VMs") }
            guard load.fits(vm.spec, on: dest, vcpuOvercommit: state.settings.placement.vcpuOvercommit) else {
                return .failure("VM \(name) needs \(vm.spec.memoryMiB) MiB; \(to) has \(max(0, load.freeMemory(dest))) MiB free")
            }
            guard state.storageAllows(vm.spec, on: dest.id) else {
                return .failure("\(to) does not see every volume of VM \(name) (\(state.volumes(of: vm.spec).map(\.name).joined(separator: ", ")))")
            }
            return .success(.moveVM(name, to: dest.id))
        }
        switch Placement.choose(vm.spec, state: state, load: load, candidates: Placement.candidates(state, excluding: from)) {
        case let .success(dest): return .success(.moveVM(name, to: dest))
        case let .failure(why): return .failure(.init("cannot move \(name): \(why)"))
        }
    }

    private static func config(_ key: String, _ value: String, state: ClusterState) -> Result<Command, RequestRefusal> {
        var m = state.settings.migration
        func count() -> Int? { Int(value).flatMap { $0 >= 0 && $0 <= 1_000_000_000 ? $0 : nil } }
        switch key {
        case "fencing.lease-ms", "fencing.margin-ms", "fencing.grace-ms", "recovery.restarts-in-place",
             "recovery.max-crashes", "recovery.crash-window-ms":
            var r = state.settings.recovery
            guard let n = count() else { return .failure("\(key) takes a whole number ≥ 0, not \(value)") }
            switch key {
            case "fencing.lease-ms":
                // A watchdog device counts whole seconds: a renewal must leave over a second.
                guard n >= max(2_000, 4 * r.heartbeatMs) else { return .failure("fencing.lease-ms must be at least \(max(2_000, 4 * r.heartbeatMs)) (a watchdog counts whole seconds)") }
                r.leaseMs = n
            case "fencing.margin-ms": r.marginMs = n
            case "fencing.grace-ms": r.fenceGraceMs = n
            case "recovery.restarts-in-place": r.restartsInPlace = n
            case "recovery.max-crashes":
                guard n >= 1 else { return .failure("recovery.max-crashes must be at least 1") }
                r.maxCrashes = n
            default:
                guard n >= 60_000 else { return .failure("recovery.crash-window-ms must be at least 60000 (one minute)") }
                r.crashWindowMs = n
            }
            return .success(.setRecoverySettings(r))
        case "migration.auto-tune":
            guard value == "on" || value == "off" else { return .failure("migration.auto-tune takes on or off, not \(value)") }
            m.autoTune = value == "on"
        case "migration.max-per-node", "migration.max-cluster", "migration.reserve-mbps", "migration.stream-mbps", "migration.max-attempts":
            guard let n = count() else { return .failure("\(key) takes a whole number ≥ 0, not \(value)") }
            switch key {
            case "migration.max-per-node": m.maxPerNode = n
            case "migration.max-cluster": m.maxCluster = n
            case "migration.reserve-mbps": m.reserveMiBps = Units.mibps(megabits: n)
            case "migration.stream-mbps": m.streamMiBps = Units.mibps(megabits: n)
            default:
                guard n >= 1 else { return .failure("migration.max-attempts must be at least 1") }
                m.maxAttempts = n
            }
        default:
            return .failure(.init("unknown setting \(key); known: \(configKeys.joined(separator: ", "))"))
        }
        return .success(.setMigrationSettings(m))
    }

    private static func unknownVM(_ name: String) -> RequestRefusal { .init("no VM named \(name)") }
    private static func unknownNode(_ name: String, _ state: ClusterState) -> RequestRefusal {
        .init("no node named \(name) (nodes: \(state.sortedNodes.map(\.name).joined(separator: ", ")))")
    }
}

/// A refused request: the message is shown to the operator as is.
public struct RequestRefusal: Error, Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public init(stringLiteral value: String) { self.message = value }
    public var description: String { message }
}

/// Conversions between the units operators type and the ones the core computes in.
public enum Units {
    /// Megabits per second (network units) to MiB/s, rounded down.
    public static func mibps(megabits: Int) -> Int { megabits * 1_000_000 / 8 / 1_048_576 }
}
