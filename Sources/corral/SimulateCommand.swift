import CorralCore
import CorralSimulator
import Foundation

/// `corral simulate SCENARIO.json [--seed S] [--json]` and
/// `corral simulate --random --nodes N --vms V --seeds A..B [--json]`.
enum SimulateCommand {
    static func run(_ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        var args = try Arguments(raw, flags: ["json", "random", "verbose"])
        let json = args.flag("json")
        if args.flag("random") {
            let nodes = try args.int("nodes", default: 5, min: 1)!
            let vms = try args.int("vms", default: 12, min: 1)!
            let faults = try args.int("faults", default: 10, min: 0)!
            let seeds = try seedRange(args.option("seeds") ?? "1..100")
            let verbose = args.flag("verbose")
            try args.rejectUnknown()
            return runRandom(nodes: nodes, vms: vms, faults: faults, seeds: seeds, json: json, verbose: verbose)
        }
        let seed = UInt64(try args.int("seed", default: 1)!)
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

    private static func runRandom(nodes: Int, vms: Int, faults: Int, seeds: ClosedRange<UInt64>, json: Bool, verbose: Bool) -> Int32 {
        var failing = 0
        var lines: [String] = []
        for seed in seeds {
            let report = Simulation(scenario: RandomScenario.make(nodes: nodes, vms: vms, seed: seed, faults: faults), seed: seed).run()
            if !report.violations.isEmpty { failing += 1 }
            if json {
                lines.append("{\"seed\":\(seed),\"violations\":[\(report.violations.map { JSONText.quote($0.text) }.joined(separator: ","))]}")
            } else if !report.violations.isEmpty {
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

    static func seedRange(_ text: String) throws(UsageError) -> ClosedRange<UInt64> {
        let parts = text.split(separator: ".", omittingEmptySubsequences: true)
        guard text.contains(".."), parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]), a <= b else {
            throw UsageError("--seeds takes A..B with A ≤ B, not \(text)")
        }
        return a...b
    }
}
