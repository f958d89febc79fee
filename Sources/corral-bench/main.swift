import CorralCore
import CorralSimulator
import Foundation

/// Benchmarks that print figures and never assert. Build with `-c release`.
let usage = """
usage: corral-bench drain [--json]      drain five VM mixes four ways in the simulator
       corral-bench plan [--json]       drain and failover plans for 64 nodes × 8,000 VMs
       corral-bench simulate [--json]   simulated node-steps per second
       corral-bench cluster [--json]    real 3-node Corosync cluster: commands/s, sync, failure detection, memory (root)
"""
let args = Array(CommandLine.arguments.dropFirst())
let json = args.contains("--json")
switch args.first {
case "drain": DrainBenchmark.run(json: json)
case "plan": PlanBenchmark.run(json: json)
case "simulate": SimulateBenchmark.run(json: json)
case "cluster": ClusterBenchmark.run(json: json)
default:
    print(usage)
    exit(args.isEmpty ? 0 : 2)
}
