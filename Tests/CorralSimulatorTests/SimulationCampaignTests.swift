import CorralSimulator
import Testing

/// The simulation campaign (DESIGN §6): thousands of random clusters with crashes, partitions,
/// hangs, VM crashes and operator requests in the middle of them, every §3 invariant checked at
/// every step. Zero violations expected. Seeds run in chunks so Swift Testing spreads them over
/// the cores and a failure names its seed range and each failing seed's violations.
@Suite struct SimulationCampaignTests {
    struct Chunk: Sendable, CustomTestStringConvertible {
        var nodes: Int
        var vms: Int
        var seeds: ClosedRange<UInt64>
        var shellFaults = false
        var testDescription: String {
            "\(nodes) nodes, \(vms) VMs\(shellFaults ? ", shell faults" : ""), seeds \(seeds.lowerBound)…\(seeds.upperBound)"
        }
    }

    static func chunks(nodes: Int, vms: Int, count: Int, size: UInt64, from start: UInt64, shellFaults: Bool = false) -> [Chunk] {
        (0..<UInt64(count)).map { i in
            Chunk(nodes: nodes, vms: vms, seeds: (start + i * size)...(start + (i + 1) * size - 1), shellFaults: shellFaults)
        }
    }

    /// 2,000 seeds on five nodes, 200 each on three and seven nodes; dense clusters (5 nodes
    /// with 60 VMs, 7 with 90: small guests, many a node, drains that barely fit); and the
    /// same with faults of the agent's shell drawn too (failed multicasts and stops, a watchdog
    /// that refuses, a frozen agent, a lease lowered during a partition, a crash at a
    /// switchover, slow fence agents).
    static let campaign = chunks(nodes: 5, vms: 12, count: 20, size: 100, from: 1)
        + chunks(nodes: 3, vms: 8, count: 2, size: 100, from: 10_001)
        + chunks(nodes: 7, vms: 16, count: 2, size: 100, from: 20_001)
        + chunks(nodes: 5, vms: 60, count: 2, size: 100, from: 30_001)
        + chunks(nodes: 7, vms: 90, count: 1, size: 60, from: 40_001)
        + chunks(nodes: 5, vms: 12, count: 6, size: 100, from: 50_001, shellFaults: true)
        + chunks(nodes: 5, vms: 60, count: 1, size: 100, from: 60_001, shellFaults: true)
        + chunks(nodes: 7, vms: 90, count: 1, size: 40, from: 70_001, shellFaults: true)

    @Test(arguments: campaign)
    func noInvariantIsEverBroken(_ chunk: Chunk) {
        var failures: [String] = []
        for seed in chunk.seeds {
            let scenario = RandomScenario.make(nodes: chunk.nodes, vms: chunk.vms, seed: seed, shellFaults: chunk.shellFaults)
            let report = Simulation(scenario: scenario, seed: seed).run()
            guard !report.violations.isEmpty else { continue }
            let lines = report.violations.prefix(5).map { "    \(Double($0.atMs) / 1000)s  \($0.text)" }
            failures.append("  seed \(seed): \(report.violations.count) violations\n" + lines.joined(separator: "\n"))
        }
        #expect(failures.isEmpty, """
            \(chunk.testDescription): \(failures.count) seeds broke invariants \
            (replay one: corral simulate --random --nodes \(chunk.nodes) --vms \(chunk.vms)\(chunk.shellFaults ? " --shell-faults" : "") --seeds N..N --verbose)
            \(failures.joined(separator: "\n"))
            """)
    }
}
