import CorralCore
import CorralSimulator
import Foundation

/// Benchmarks that print figures and never assert. Build with `-c release`.
let usage = """
usage: corral-bench drain [--json]      drain five VM mixes four ways in the simulator
       corral-bench plan [--json]       drain and failover plans for 64 nodes × 8,000 VMs
       corral-bench simulate [--json]   simulated node-steps per second
       corral-bench campaign [--seeds 10000] [--json]
                                        the simulation campaign at benchmark size: sparse and dense clusters,
                                        shell faults; failing seeds and wall time per mix (exit 1 on a violation)
       corral-bench cluster [--json]    real 3-node Corosync cluster: commands/s, sync, failure detection, memory (root)
       corral-bench chaos [--seed S] [--rounds R] [--nodes N] [--guests G] [--fence-agent] [--json] (see chaos --help)
                                        real 5-node libvirt cluster: seeded fault campaign checked against the hypervisors (root)
       corral-bench drain-real [--guests N] [--memory MIB] [--link 200mbit] [--link-source configured|measured]
                               [--workload fill|idle] [--repeat K]
                               [--save-logs DIR] [--json]
                                        real 3-node libvirt cluster: drain node1 (link capped) tuned, one at a time,
                                        fixed 2 and all at once; makespan and guest downtime (root)
       corral-bench failover [--runs 5] [--guests N] [--memory MIB] [--lease-ms MS] [--margin-ms MS] [--verbose]
                             [--save-logs DIR] [--json]
                                        real 3-node libvirt cluster: kill a node holding guests; time until virsh shows
                                        them running in the survivors, with a fence agent and with the lease alone (root)
       corral-bench patch [--guests 2] [--memory 64] [--hook-seconds 3] [--save-logs DIR] [--json]
                                        real 3-node libvirt cluster: a patch run's wall time against the sum of its
                                        drains and hooks, and the guests' total downtime (root)
Real clusters: CORRAL_CLUSTER_ID (default 0), CORRAL_CLUSTER_DIR (drain-real/failover default /run/corral-bench-real),
CORRAL_BIN (default: this binary's directory) holding corrald and corral. Interrupting tears the cluster down.
"""
// The binaries of this build drive the cluster unless CORRAL_BIN says otherwise.
if ProcessInfo.processInfo.environment["CORRAL_BIN"] == nil {
    setenv("CORRAL_BIN", URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path, 1)
}
let args = Array(CommandLine.arguments.dropFirst())
let json = args.contains("--json")
let options = BenchOptions(args: Array(args.dropFirst()))
switch args.first {
case "drain": DrainBenchmark.run(json: json)
case "plan": PlanBenchmark.run(json: json)
case "simulate": SimulateBenchmark.run(json: json)
case "campaign": exit(CampaignBenchmark.run(options, json: json))
case "cluster": ClusterBenchmark.run(json: json)
case "chaos": exit(ChaosCampaign.run(Array(args.dropFirst())))
case "drain-real": DrainRealBenchmark.run(options, json: json)
case "failover": FailoverBenchmark.run(options, json: json)
case "patch": PatchBenchmark.run(options, json: json)
default:
    print(usage)
    exit(args.isEmpty ? 0 : 2)
}
