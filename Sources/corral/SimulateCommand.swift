import CorralCore
import CorralSimulator
import Foundation

/// `corral simulate SCENARIO.json [--seed S] [--json]` and
/// `corral simulate --random --nodes N --vms V --seeds A..B [--shell-faults] [--json | --trace]`.
///
/// `--trace` prints, per seed, the core step count and an FNV-1a 64 digest of the full report
/// text: two processes (each with its own randomised `Hasher` seed) must print the same bytes,
/// which catches Set/Dictionary iteration order leaking into the core's output (one process
/// cannot: its hash seed is the same for every run; see DeterminismTests).
enum SimulateCommand {
    static func run(_ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        var args = try Arguments(raw, flags: ["json", "random", "shell-faults", "trace", "verbose", "agent-log"])
        let json = args.flag("json")
        if args.flag("random") {
            let nodes = try args.int("nodes", default: 5, min: 1)!
            let vms = try args.int("vms", default: 12, min: 1)!
            let faults = try args.int("faults", default: 10, min: 0)!
            let shape = RandomShape(nodes: nodes, vms: vms, faults: faults, shellFaults: args.flag("shell-faults"))
            let seeds = try seedRange(args.option("seeds") ?? "1..100")
            let verbose = args.flag("verbose")
            let agentLog = args.flag("agent-log")
            if agentLog && !verbose { throw UsageError("--agent-log goes with --verbose") }
            let trace = args.flag("trace")
            try args.rejectUnknown()
            if trace {
                guard !json && !verbose else { throw UsageError("--trace goes with neither --json nor --verbose") }
                return runTrace(shape, seeds: seeds)
            }
            return runRandom(shape, seeds: seeds, json: json, verbose: verbose, agentLog: agentLog)
        }
        let seed = UInt64(try args.int("seed", default: 1)!)
        if args.flag("trace") { throw UsageError("--trace goes with --random only") }
        try args.rejectUnknown()
        guard args.words.count == 1 else { throw UsageError("usage: corral simulate SCENARIO.json [--seed S] [--json]") }
        let path = args.words[0]
        guard let data = FileManager.default.contents(atPath: path) else { throw UsageError("cannot read \(path)") }
        let scenario: Scenario
        do { scenario = try ScenarioParser.parse(data) } catch { throw UsageError("\(path): \(error)") }
        let report = Simulation(scenario: scenario, seed: seed).run()
        print(json ? report.json : report.text)
        return report.violations.isEmpty ? 0 : 1
    }

    private static func runRandom(_ shape: RandomShape, seeds: ClosedRange<UInt64>, json: Bool, verbose: Bool, agentLog: Bool) -> Int32 {
        let (nodes, vms) = (shape.nodes, shape.vms)
        var failing = 0
        var lines: [String] = []
        for seed in seeds {
            let simulation = Simulation(scenario: shape.scenario(seed: seed), seed: seed)
            simulation.agentLog = agentLog
            let report = simulation.run()
            if !report.violations.isEmpty { failing += 1 }
            if json {
                lines.append("{\"seed\":\(seed),\"violations\":[\(report.violations.map { JSONText.quote($0.text) }.joined(separator: ","))]}")
            } else if !report.violations.isEmpty || (verbose && seeds.count == 1) {
                // One seed with --verbose: its whole timeline, clean or not (to replay and read).
                if verbose { lines.append(report.text) }
                lines.append("seed \(seed): \(report.violations.count) violations")
                lines += report.violations.map { "  \(Double($0.atMs) / 1000)s \($0.text)" }
            }
        }
        if json {
            print("{\"nodes\":\(nodes),\"vms\":\(vms),\"seeds\":[\(lines.joined(separator: ","))],\"failingSeeds\":\(failing)}")
        } else {
            lines.forEach { print($0) }
            print("\(seeds.count) seeds, \(nodes) nodes, \(vms) VMs: \(failing) with violations")
        }
        return failing == 0 ? 0 : 1
    }

    /// One line per seed: `seed S steps N violations V text FNV1A64`, then the summary line.
    private static func runTrace(_ shape: RandomShape, seeds: ClosedRange<UInt64>) -> Int32 {
        var failing = 0
        for seed in seeds {
            let report = Simulation(scenario: shape.scenario(seed: seed), seed: seed).run()
            if !report.violations.isEmpty { failing += 1 }
            print("seed \(seed) steps \(report.coreSteps) violations \(report.violations.count) text \(fnv1a64Hex(report.text))")
        }
        print("\(seeds.count) seeds, \(shape.nodes) nodes, \(shape.vms) VMs: \(failing) with violations")
        return failing == 0 ? 0 : 1
    }

    /// FNV-1a, 64 bit, over the UTF-8 bytes, as 16 lower-case hex digits. Stable across
    /// processes and builds, unlike `Hasher` (randomly seeded per process).
    static func fnv1a64Hex(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func seedRange(_ text: String) throws(UsageError) -> ClosedRange<UInt64> {
        let parts = text.split(separator: ".", omittingEmptySubsequences: true)
        guard text.contains(".."), parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]), a <= b else {
            throw UsageError("--seeds takes A..B with A ≤ B, not \(text)")
        }
        return a...b
    }
}

/// What `--random` draws: cluster size, fault count, and whether shell faults are drawn too.
struct RandomShape {
    var nodes: Int
    var vms: Int
    var faults: Int
    var shellFaults: Bool
    func scenario(seed: UInt64) -> Scenario {
        RandomScenario.make(nodes: nodes, vms: vms, seed: seed, faults: faults, shellFaults: shellFaults)
    }
}
