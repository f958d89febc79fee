import CorralSimulator
import Foundation

/// `corral-bench campaign [--seeds N] [--json]`: the simulation campaign at benchmark size,
/// N seeds (default 10,000) spread over sparse and dense clusters, most of them with shell
/// faults drawn too. Prints seeds, failing seeds and wall time per mix; the exit status is 1
/// if any seed broke an invariant (so a benchmark run can be kept as evidence).
enum CampaignBenchmark {
    struct Mix {
        var nodes: Int
        var vms: Int
        var shellFaults: Bool
        /// Share of the seeds, in percent.
        var percent: Int
        /// Seeds of a mix start here, so mixes never share a seed.
        var firstSeed: UInt64
    }

    static let mixes = [
        Mix(nodes: 5, vms: 12, shellFaults: true, percent: 55, firstSeed: 1_000_000),
        Mix(nodes: 5, vms: 12, shellFaults: false, percent: 15, firstSeed: 2_000_000),
        Mix(nodes: 3, vms: 8, shellFaults: true, percent: 10, firstSeed: 3_000_000),
        Mix(nodes: 5, vms: 60, shellFaults: true, percent: 12, firstSeed: 4_000_000),
        Mix(nodes: 7, vms: 90, shellFaults: true, percent: 8, firstSeed: 5_000_000),
    ]

    static func run(_ options: BenchOptions, json: Bool) -> Int32 {
        let total = options.int("seeds", default: 10_000)
        var lines: [String] = []
        var failingTotal = 0
        for mix in mixes {
            let count = max(1, total * mix.percent / 100)
            let seeds = mix.firstSeed...(mix.firstSeed + UInt64(count) - 1)
            let start = DispatchTime.now().uptimeNanoseconds
            var failing: [UInt64] = []
            for seed in seeds {
                let scenario = RandomScenario.make(nodes: mix.nodes, vms: mix.vms, seed: seed, shellFaults: mix.shellFaults)
                if !Simulation(scenario: scenario, seed: seed).run().violations.isEmpty { failing.append(seed) }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            failingTotal += failing.count
            let name = "\(mix.nodes) nodes, \(mix.vms) VMs\(mix.shellFaults ? ", shell faults" : "")"
            if json {
                lines.append("{\"mix\":\"\(name)\",\"seeds\":\(count),\"failing\":[\(failing.map(String.init).joined(separator: ","))],\"wallSeconds\":\(fmt(seconds))}")
            } else {
                lines.append("  \(name): \(count) seeds from \(mix.firstSeed), \(failing.count) failing\(failing.isEmpty ? "" : " \(failing.prefix(10))"), \(fmt(seconds)) s")
            }
        }
        if json {
            print("{\"seeds\":\(total),\"failingSeeds\":\(failingTotal),\"mixes\":[\(lines.joined(separator: ","))]}")
        } else {
            print("campaign: \(total) seeds, \(failingTotal) with violations")
            lines.forEach { print($0) }
            print("replay one: corral simulate --random --nodes N --vms V [--shell-faults] --seeds S..S --verbose")
        }
        return failingTotal == 0 ? 0 : 1
    }
}
