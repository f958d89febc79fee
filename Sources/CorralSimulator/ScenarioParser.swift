import CorralCore
import Foundation

/// Reads a scenario file (JSON, documented in Docs/scenarios.md). Every error names the
/// field and the problem, e.g. `vms[2].memoryMiB: expected a positive whole number, got -5`.
public enum ScenarioParser {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var path: String
        public var problem: String
        public var description: String { path.isEmpty ? problem : "\(path): \(problem)" }
    }

    public static func parse(_ data: Data) throws(Failure) -> Scenario {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            throw Failure(path: "", problem: "not valid JSON (\(error.localizedDescription))")
        }
        let r = try Object(root, "")
        try r.only(["name", "nodes", "vms", "settings", "timing", "events", "duration"])
        let name = try r.string("name", default: "scenario")
        let nodes = try r.array("nodes").enumerated().map { i, v throws(Failure) in try node(Object(v, "nodes[\(i)]")) }
        guard !nodes.isEmpty else { throw Failure(path: "nodes", problem: "at least one node is needed") }
        if let dup = duplicate(nodes.map(\.name)) { throw Failure(path: "nodes", problem: "node \(dup) is listed twice") }
        let names = Set(nodes.map(\.name))
        let vms = try r.array("vms", optional: true).enumerated().map { i, v throws(Failure) in try vm(Object(v, "vms[\(i)]"), nodes: names) }
        if let dup = duplicate(vms.map(\.spec.name)) { throw Failure(path: "vms", problem: "VM \(dup) is listed twice") }
        // Checked here because the cluster would refuse the second VM and the run would silently lack it.
        var diskOwners: [String: String] = [:]
        for (i, vm) in vms.enumerated() {
            for disk in vm.spec.disks {
                if let owner = diskOwners[disk], owner != vm.spec.name {
                    throw Failure(path: "vms[\(i)].disks", problem: "disk \(disk) already belongs to VM \(owner)")
                }
                diskOwners[disk] = vm.spec.name
            }
        }
        let settings = try settings(r.object("settings", optional: true))
        let timing = try timing(r.object("timing", optional: true))
        let events = try r.array("events", optional: true).enumerated().map { i, v throws(Failure) in
            try event(Object(v, "events[\(i)]"), nodes: names, vms: Set(vms.map(\.spec.name)))
        }
        let duration = try r.double("duration", optional: true).map { Int64($0 * 1000) }
        return Scenario(name: name, nodes: nodes, vms: vms, settings: settings, timing: timing, events: events, durationMs: duration)
    }

    private static func duplicate(_ names: [String]) -> String? {
        var seen = Set<String>()
        return names.first { !seen.insert($0).inserted }
    }

    private static func node(_ o: Object) throws(Failure) -> Scenario.NodeConfig {
        try o.only(["name", "memoryMiB", "vcpus", "linkMbps"])
        return .init(name: try o.string("name"),
                     capacity: Capacity(memoryMiB: try o.positive("memoryMiB"), vcpus: try o.positive("vcpus", default: 16)),
                     linkMiBps: Units.mibps(megabits: try o.positive("linkMbps", default: 10_000)))
    }

    static func vm(_ o: Object, nodes: Set<String>) throws(Failure) -> Scenario.VMConfig {
        try o.only(["name", "memoryMiB", "vcpus", "priority", "preferred", "antiAffinity", "ha", "dirtyMiBps", "disks", "running"])
        let priorityText = try o.string("priority", default: "medium")
        guard let priority = Priority(rawValue: priorityText) else {
            throw o.failure("priority", "expected high, medium or low, got \(priorityText)")
        }
        let preferred = try o.strings("preferred")
        if let unknown = preferred.first(where: { !nodes.contains($0) }) {
            throw o.failure("preferred", "\(unknown) is not a node of this scenario")
        }
        let spec = VMSpec(name: try o.string("name"), memoryMiB: try o.positive("memoryMiB"), vcpus: try o.positive("vcpus", default: 1),
                          priority: priority, preferredOwners: preferred, antiAffinityClass: try o.string("antiAffinity", optional: true),
                          highlyAvailable: try o.bool("ha", default: true), disks: try o.strings("disks"))
        if let problem = VMSpecValidation.problem(spec, state: ClusterState()), !problem.hasPrefix("preferred owner") {
            throw Failure(path: o.path, problem: problem)
        }
        return .init(spec: spec, dirtyRateMiBps: try o.count("dirtyMiBps", default: 0), running: try o.bool("running", default: true))
    }

    private static func settings(_ o: Object?) throws(Failure) -> ClusterSettings {
        var s = ClusterSettings()
        guard let o else { return s }
        try o.only(["leaseMs", "marginMs", "heartbeatMs", "fenceAgent", "restartsInPlace", "maxCrashes",
                    "maxPerNode", "maxCluster", "autoTune", "reserveMbps", "streamMbps", "setupMs", "maxAttempts"])
        s.recovery.leaseMs = try o.positive("leaseMs", default: s.recovery.leaseMs)
        s.recovery.marginMs = try o.count("marginMs", default: s.recovery.marginMs)
        s.recovery.heartbeatMs = try o.positive("heartbeatMs", default: s.recovery.heartbeatMs)
        s.recovery.fenceAgent = try o.bool("fenceAgent", default: false)
        s.recovery.restartsInPlace = try o.count("restartsInPlace", default: s.recovery.restartsInPlace)
        s.recovery.maxCrashes = try o.count("maxCrashes", default: s.recovery.maxCrashes)
        s.migration.maxPerNode = try o.count("maxPerNode", default: 0)
        s.migration.maxCluster = try o.count("maxCluster", default: 0)
        s.migration.autoTune = try o.bool("autoTune", default: true)
        s.migration.reserveMiBps = Units.mibps(megabits: try o.count("reserveMbps", default: 0))
        s.migration.streamMiBps = Units.mibps(megabits: try o.count("streamMbps", default: 0))
        s.migration.setupMs = try o.count("setupMs", default: s.migration.setupMs)
        s.migration.maxAttempts = try o.positive("maxAttempts", default: s.migration.maxAttempts)
        if s.recovery.heartbeatMs * 2 > s.recovery.leaseMs {
            throw o.failure("heartbeatMs", "must be at most half of leaseMs (\(s.recovery.leaseMs)) so a lease can be renewed in time")
        }
        return s
    }

    private static func timing(_ o: Object?) throws(Failure) -> Scenario.Timing {
        var t = Scenario.Timing()
        guard let o else { return t }
        try o.only(["detectionMs", "vmStartMs", "streamMbps", "keepaliveMs", "settleMs", "downtimeLimitMs", "maxRounds", "diskOperationMs"])
        t.detectionMs = Int64(try o.positive("detectionMs", default: Int(t.detectionMs)))
        t.vmStartMs = Int64(try o.positive("vmStartMs", default: Int(t.vmStartMs)))
        t.streamMiBps = Units.mibps(megabits: try o.positive("streamMbps", default: 8_000_000))
        t.keepaliveMs = Int64(try o.positive("keepaliveMs", default: Int(t.keepaliveMs)))
        t.settleMs = Int64(try o.count("settleMs", default: Int(t.settleMs)))
        t.downtimeLimitMs = Int64(try o.positive("downtimeLimitMs", default: Int(t.downtimeLimitMs)))
        t.maxRounds = try o.positive("maxRounds", default: t.maxRounds)
        t.diskOperationMs = Int64(try o.positive("diskOperationMs", default: Int(t.diskOperationMs)))
        return t
    }

    private static let actions = ["crash", "powerOn", "partition", "heal", "hang", "resume", "crashVM", "drain",
                                  "resumeNode", "move", "addVM", "removeVM", "startVM", "stopVM", "pause", "config",
                                  "hangAgent", "crashAfterSwitchover", "watchdogFails", "patch", "addVolume", "createDisk", "moveVolume"]

    private static func event(_ o: Object, nodes: Set<String>, vms: Set<String>) throws(Failure) -> ScenarioEvent {
        try o.only(["at", "via", "failback", "to", "value", "sizeMiB"] + actions)
        let at = Int64(try o.double("at") * 1000)
        guard at >= 0 else { throw o.failure("at", "must not be negative") }
        let present = actions.filter { o.has($0) }
        guard present.count == 1 else {
            throw Failure(path: o.path, problem: "needs exactly one action of \(actions.joined(separator: ", ")); found \(present.isEmpty ? "none" : present.joined(separator: ", "))")
        }
        let via = try o.string("via", optional: true)
        if let via, !nodes.contains(via) { throw o.failure("via", "\(via) is not a node of this scenario") }
        func nodeName(_ key: String) throws(Failure) -> String {
            let n = try o.string(key)
            guard nodes.contains(n) else { throw o.failure(key, "\(n) is not a node of this scenario") }
            return n
        }
        let action: ScenarioEvent.Action
        switch present[0] {
        case "crash": action = .crash(try nodeName("crash"))
        case "powerOn": action = .powerOn(try nodeName("powerOn"))
        case "hang": action = .hang(try nodeName("hang"))
        case "hangAgent": action = .hangAgent(try nodeName("hangAgent"))
        case "crashAfterSwitchover": action = .crashAfterSwitchover(try nodeName("crashAfterSwitchover"))
        case "watchdogFails": action = .watchdogFails(try nodeName("watchdogFails"))
        case "resume": action = .resume(try nodeName("resume"))
        case "heal": action = .heal
        case "partition":
            let groups = try o.array("partition").enumerated().map { i, g throws(Failure) -> [String] in
                guard let names = g as? [String], !names.isEmpty else { throw o.failure("partition[\(i)]", "expected a non-empty list of node names") }
                if let bad = names.first(where: { !nodes.contains($0) }) { throw o.failure("partition[\(i)]", "\(bad) is not a node of this scenario") }
                return names
            }
            action = .partition(groups)
        case "crashVM": action = .crashVM(try o.string("crashVM"))
        case "drain": action = .request(.drainNode(try nodeName("drain")), via: via)
        case "pause": action = .request(.pauseNode(try nodeName("pause")), via: via)
        case "resumeNode": action = .request(.resumeNode(try nodeName("resumeNode"), failback: try o.bool("failback", default: false)), via: via)
        case "move":
            let to = try o.string("to", optional: true)
            if let to, !nodes.contains(to) { throw o.failure("to", "\(to) is not a node of this scenario") }
            action = .request(.moveVM(try o.string("move"), to: to), via: via)
        case "addVM":
            let config = try vm(Object(o.raw["addVM"]!, o.path + ".addVM"), nodes: nodes)
            action = .request(.addVM(config.spec, start: config.running), via: via)
        case "removeVM": action = .request(.removeVM(try o.string("removeVM")), via: via)
        case "startVM": action = .request(.startVM(try o.string("startVM")), via: via)
        case "stopVM": action = .request(.stopVM(try o.string("stopVM")), via: via)
        // Simulated hooks succeed at once (SimulatedNode.runPatchHook).
        case "patch": action = .request(.startPatchRun(PatchRequest(PatchOptions(hook: try o.string("patch")))), via: via)
        case "addVolume":
            let name = try o.string("addVolume")
            action = .request(.addVolume(name: name, path: "/volumes/\(name)", kind: .shared, node: nil), via: via)
        case "createDisk":
            let reference = try o.string("createDisk").split(separator: "/").map(String.init)
            guard reference.count == 2 else { throw o.failure("createDisk", "names a disk as VOLUME/NAME") }
            action = .request(.createDisk(volume: reference[0], disk: reference[1], sizeMiB: try o.positive("sizeMiB", default: 1_024),
                                          format: .qcow2), via: via)
        case "moveVolume":
            let to = try o.string("to")
            guard nodes.contains(to) else { throw o.failure("to", "\(to) is not a node of this scenario") }
            action = .request(.moveVolume(try o.string("moveVolume"), to: to), via: via)
        default: action = .request(.setConfig(key: try o.string("config"), value: try o.string("value")), via: via)
        }
        return ScenarioEvent(atMs: at, action)
    }

    /// A JSON object with its path, for messages that say where the problem is.
    struct Object {
        let raw: [String: Any]
        let path: String
        init(_ value: Any, _ path: String) throws(Failure) {
            guard let dict = value as? [String: Any] else { throw Failure(path: path.isEmpty ? "(top level)" : path, problem: "expected an object") }
            raw = dict
            self.path = path
        }
        func failure(_ key: String, _ problem: String) -> Failure {
            Failure(path: path.isEmpty ? key : "\(path).\(key)", problem: problem)
        }
        func has(_ key: String) -> Bool { raw[key] != nil }
        /// JSONSerialization hands back true/false as an NSNumber subclass; numbers 0 and 1 also
        /// cast to Bool, so only the class tells a boolean from a number.
        static func isBoolean(_ v: Any) -> Bool { String(describing: type(of: v)).contains("Boolean") || type(of: v) == Bool.self }
        func only(_ keys: [String]) throws(Failure) {
            if let unknown = raw.keys.sorted().first(where: { !keys.contains($0) }) {
                throw failure(unknown, "unknown field (known: \(keys.joined(separator: ", ")))")
            }
        }
        func string(_ key: String) throws(Failure) -> String {
            guard let v = raw[key] else { throw failure(key, "missing") }
            guard let s = v as? String, !s.isEmpty else { throw failure(key, "expected a non-empty string") }
            return s
        }
        func string(_ key: String, default d: String) throws(Failure) -> String { raw[key] == nil ? d : try string(key) }
        func string(_ key: String, optional: Bool) throws(Failure) -> String? { raw[key] == nil ? nil : try string(key) }
        func strings(_ key: String) throws(Failure) -> [String] {
            guard let v = raw[key] else { return [] }
            guard let list = v as? [String] else { throw failure(key, "expected a list of strings") }
            return list
        }
        func number(_ key: String) throws(Failure) -> NSNumber {
            guard let v = raw[key] else { throw failure(key, "missing") }
            guard let n = v as? NSNumber, !Self.isBoolean(v) else { throw failure(key, "expected a number, got \(v)") }
            return n
        }
        func double(_ key: String) throws(Failure) -> Double { try number(key).doubleValue }
        func double(_ key: String, optional: Bool) throws(Failure) -> Double? { raw[key] == nil ? nil : try double(key) }
        func count(_ key: String, default d: Int) throws(Failure) -> Int {
            guard raw[key] != nil else { return d }
            let n = try number(key).doubleValue
            guard n >= 0, n == n.rounded(), n < 1e12 else { throw failure(key, "expected a whole number ≥ 0, got \(raw[key]!)") }
            return Int(n)
        }
        func positive(_ key: String, default d: Int? = nil) throws(Failure) -> Int {
            if raw[key] == nil, let d { return d }
            let n = try number(key).doubleValue
            guard n > 0, n == n.rounded(), n < 1e12 else { throw failure(key, "expected a positive whole number, got \(raw[key]!)") }
            return Int(n)
        }
        func bool(_ key: String, default d: Bool) throws(Failure) -> Bool {
            guard let v = raw[key] else { return d }
            guard Self.isBoolean(v), let b = v as? Bool else { throw failure(key, "expected true or false") }
            return b
        }
        func array(_ key: String, optional: Bool = false) throws(Failure) -> [Any] {
            guard let v = raw[key] else {
                if optional { return [] }
                throw failure(key, "missing")
            }
            guard let a = v as? [Any] else { throw failure(key, "expected a list") }
            return a
        }
        func object(_ key: String, optional: Bool) throws(Failure) -> Object? {
            guard let v = raw[key] else { return nil }
            return try Object(v, path.isEmpty ? key : "\(path).\(key)")
        }
    }
}
