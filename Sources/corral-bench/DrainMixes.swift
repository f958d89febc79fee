import CorralCore
import CorralSimulator

/// The VM mixes `corral-bench drain` drains, each through a stated bottleneck.
struct DrainMix {
    var name: String
    var nodes: [Scenario.NodeConfig]
    var vms: [Scenario.VMConfig]
    /// Link B of the lower bound (MiB/s): the narrowest of the source and the destinations together.
    var bottleneckMiBps: Int
    var streamMiBps: Int
    var reserveMiBps: Int

    /// LB = max(ΣM / (B − reserve), max over VMs of M / (min(b, B − reserve) − D)), in seconds.
    var lowerBound: Double {
        let usable = Double(bottleneckMiBps - reserveMiBps)
        let total = Double(vms.map(\.spec.memoryMiB).reduce(0, +)) / usable
        let single = vms.map { Double($0.spec.memoryMiB) / (min(Double(streamMiBps), usable) - Double($0.dirtyRateMiBps)) }.max() ?? 0
        return max(total, single)
    }

    static let gbit = 119 // MiB/s in one Gbit/s

    static var all: [DrainMix] {
        var rng = SplitMix64(seed: 2012)
        func vm(_ name: String, _ mib: Int, _ dirty: Int) -> Scenario.VMConfig {
            .init(spec: VMSpec(name: name, memoryMiB: mib, vcpus: 2, preferredOwners: ["src"]), dirtyRateMiBps: dirty)
        }
        func node(_ name: String, gbit: Int, memoryGiB: Int = 1024) -> Scenario.NodeConfig {
            .init(name: name, capacity: Capacity(memoryMiB: memoryGiB * 1024, vcpus: 512), linkMiBps: gbit * DrainMix.gbit)
        }
        let tenGig = [node("src", gbit: 10), node("dst1", gbit: 10), node("dst2", gbit: 10), node("dst3", gbit: 10)]
        return [
            DrainMix(name: "many-small-idle", nodes: tenGig,
                     vms: (1...40).map { vm("small\($0)", 2048, Int.random(in: 2...6, using: &rng)) },
                     bottleneckMiBps: 10 * gbit, streamMiBps: 3 * gbit, reserveMiBps: 50),
            DrainMix(name: "mixed-sizes", nodes: tenGig,
                     vms: (1...16).map { vm("mixed\($0)", [1024, 2048, 4096, 8192, 16384, 32768][Int.random(in: 0...5, using: &rng)], Int.random(in: 2...40, using: &rng)) },
                     bottleneckMiBps: 10 * gbit, streamMiBps: 3 * gbit, reserveMiBps: 50),
            DrainMix(name: "some-high-dirty", nodes: tenGig,
                     vms: [vm("hot1", 8192, 150), vm("hot2", 8192, 200)] + (1...10).map { vm("calm\($0)", 4096, 5) },
                     bottleneckMiBps: 10 * gbit, streamMiBps: 10 * gbit, reserveMiBps: 50),
            // Harsher: a third of the memory dirties at 175–250 MiB/s. Pre-copy must re-send about
            // 25 % of it even at the full link, which LB does not count.
            DrainMix(name: "many-high-dirty", nodes: tenGig,
                     vms: (1...4).map { vm("hot\($0)", 8192, 150 + 25 * $0) } + (1...8).map { vm("calm\($0)", 4096, 5) },
                     bottleneckMiBps: 10 * gbit, streamMiBps: 10 * gbit, reserveMiBps: 50),
            DrainMix(name: "shared-destination", nodes: [node("src", gbit: 25), node("dst1", gbit: 10)],
                     vms: (1...20).map { vm("web\($0)", 4096, Int.random(in: 5...20, using: &rng)) },
                     bottleneckMiBps: 10 * gbit, streamMiBps: 5 * gbit, reserveMiBps: 50),
            DrainMix(name: "slow-1gbit-link", nodes: [node("src", gbit: 1), node("dst1", gbit: 1), node("dst2", gbit: 1)],
                     vms: (1...8).map { vm("app\($0)", [1024, 2048, 4096][Int.random(in: 0...2, using: &rng)], Int.random(in: 1...6, using: &rng)) },
                     bottleneckMiBps: 1 * gbit, streamMiBps: 1 * gbit, reserveMiBps: 12),
        ]
    }
}

/// How the drain's migrations are admitted: Corral's tuned scheduler or a fixed concurrency.
enum DrainStrategy: String, CaseIterable {
    case tuned, oneAtATime = "one-at-a-time", fixedTwo = "fixed-2", allAtOnce = "all-at-once"

    func apply(to settings: inout MigrationSettings) {
        switch self {
        case .tuned: settings.autoTune = true
        case .oneAtATime: settings.autoTune = false; settings.maxPerNode = 1
        case .fixedTwo: settings.autoTune = false; settings.maxPerNode = 2
        case .allAtOnce: settings.autoTune = false; settings.maxPerNode = 0
        }
    }
}

/// Drains the source node of a mix in the simulator and returns the makespan in seconds
/// (nil if it did not finish) plus the total downtime.
func drainMakespan(_ mix: DrainMix, _ strategy: DrainStrategy) -> (seconds: Double?, downtimeMs: Double, failed: Int) {
    var settings = ClusterSettings()
    settings.migration.streamMiBps = mix.streamMiBps
    settings.migration.reserveMiBps = mix.reserveMiBps
    strategy.apply(to: &settings.migration)
    var timing = Scenario.Timing()
    timing.streamMiBps = mix.streamMiBps
    let drainAt: Int64 = 5_000
    let scenario = Scenario(name: "\(mix.name)/\(strategy.rawValue)", nodes: mix.nodes, vms: mix.vms, settings: settings,
                            timing: timing, events: [.init(atMs: drainAt, .request(.drainNode("src"), via: nil))],
                            durationMs: 3_600_000)
    let sim = Simulation(scenario: scenario, seed: 1)
    sim.stopWhen = { $0.nodeStateTimes["src:drained"] != nil || $0.nodeStateTimes["src:paused"] != nil }
    let report = sim.run()
    let done = report.nodeStateTimes["src:drained"].map { Double($0 - drainAt) / 1000 }
    return (done, report.totalDowntimeMs, report.failedMigrations)
}
