import CorralCore
import CorralSimulator
import Foundation

/// Benchmarks that print figures and never assert. Build with `-c release`.
let usage = """
usage: corral-bench drain [--json]      drain five VM mixes four ways in the simulator
       corral-bench plan [--json]       drain and failover plans for 64 nodes × 8,000 VMs
       corral-bench simulate [--json]   simulated node-steps per second
       corral-bench cluster [--json]    real 3-node Corosync cluster: commands/s, sync, failure detection, memory (root)
       corral-bench chaos [--seed S] [--rounds R] [--nodes N] [--guests G] [--fence-agent] [--json] (see chaos --help)
                                        real 5-node libvirt cluster: seeded fault campaign checked against the hypervisors (root)
"""
let args = Array(CommandLine.arguments.dropFirst())
let json = args.contains("--json")
switch args.first {
case "drain": DrainBenchmark.run(json: json)
case "plan": PlanBenchmark.run(json: json)
case "simulate": SimulateBenchmark.run(json: json)
case "cluster": ClusterBenchmark.run(json: json)
case "chaos": exit(ChaosCampaign.run(Array(args.dropFirst())))
default:
    print(usage)
    exit(args.isEmpty ? 0 : 2)
}
