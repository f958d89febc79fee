import CorralSimulator
import Foundation

/// `corral-bench simulate`: how many node-steps (one input through one node's core) the
/// simulator runs per second on random fault schedules.
enum SimulateBenchmark {
    static func run(json: Bool) {
        var steps = 0
        var simulatedMs: Int64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for seed in 1...40 as ClosedRange<UInt64> {
            let report = Simulation(scenario: RandomScenario.make(nodes: 5, vms: 12, seed: seed), seed: seed).run()
            steps += report.coreSteps
            simulatedMs += report.endMs
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if json {
            print("{\"runs\":40,\"nodeSteps\":\(steps),\"wallSeconds\":\(fmt(seconds)),\"nodeStepsPerSecond\":\(Int(Double(steps) / seconds)),\"simulatedSecondsPerSecond\":\(fmt(Double(simulatedMs) / 1000 / seconds))}")
        } else {
            print("simulate: 40 random runs of 5 nodes, 12 VMs, 10 faults each")
            print("  \(steps) node-steps in \(fmt(seconds)) s = \(Int(Double(steps) / seconds)) node-steps/s (\(fmt(Double(simulatedMs) / 1000 / seconds)) simulated s per wall s)")
        }
    }
}
