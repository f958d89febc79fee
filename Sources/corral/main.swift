import Foundation

/// The operator's command line. Thin: parse, call, print.
let usage = """
usage: corral status [--json]
       corral vm list [--json] | vm add NAME --memory MIB [--vcpus N] [--priority high|medium|low]
                 [--preferred N1,N2] [--anti-affinity CLASS] [--disks P1,P2] [--no-ha] [--stopped] [--what-if]
       corral vm remove|start|stop NAME [--what-if] | vm move NAME [--to NODE] [--what-if]
       corral node list [--json] | node drain|pause NAME [--what-if] | node resume NAME [--failback] [--what-if]
       corral migrations [--json]
       corral patch run --hook CMD [--pre CMD] [--post CMD] [--max-failed N] [--retries N] [--reboot-timeout DURATION]
                 [--order fewest-vms|NODE,NODE…] [--failback immediate|none] [--require-all-online]
                 [--keep-running GROUP=N …] [--what-if] | patch status|report [--json] | patch abort [--force-recover]
       corral config set KEY VALUE [--what-if]
       corral volume list|show NAME [--json] | volume add NAME --path DIR [--shared | --local --node NODE]
       corral volume remove NAME | volume move NAME --to NODE [--wait] | volume maintenance NAME [--force] | volume online NAME
       corral disk list [VOLUME] [--json] | disk create VOLUME/NAME --size SIZE [--format raw|qcow2]
       corral disk resize VOLUME/NAME --size SIZE | disk delete VOLUME/NAME   (these wait for the volume's coordinator)
       corral metrics [--textfile PATH.prom]
       corral monitor [--interval SECONDS] [--once] [--count N] [--json]
       corral events [--last N] [--follow [--timeout SECONDS]] [--json]
       corral simulate SCENARIO.json [--seed S] [--json]
       corral simulate --random [--nodes N] [--vms V] [--faults F] [--seeds A..B] [--shell-faults] [--json] [--verbose [--agent-log]] [--trace]
Changes take --wait [--timeout SECONDS] (vm add/start/stop/move, node drain, node resume --failback)
and --json (one result object). Every command but simulate takes --socket PATH (default
/run/corral/corral.sock, or $CORRAL_SOCKET).
Exit status: 0 done, 1 refused or failed (nothing changed, or --wait saw it fail), 2 usage error,
3 corrald not reachable. See corral(8).
"""

let argv = CommandLine.arguments.dropFirst()
do {
    switch argv.first {
    case "simulate": exit(try SimulateCommand.run(argv.dropFirst()))
    case "status", "vm", "node", "migrations", "config", "volume", "disk": exit(try ClusterCommands.run(argv.first!, argv.dropFirst()))
    case "patch": exit(try PatchCommands.run(argv.dropFirst()))
    case "metrics": exit(try ObserveCommands.metrics(argv.dropFirst()))
    case "monitor": exit(try ObserveCommands.monitor(argv.dropFirst()))
    case "events": exit(try ObserveCommands.events(argv.dropFirst()))
    case "-h", "--help", "help", nil:
        print(usage)
    default:
        throw UsageError("unknown command \(argv.first!)\n\(usage)")
    }
} catch let error as UsageError {
    FileHandle.standardError.write(Data("corral: \(error)\n".utf8))
    exit(error.exitStatus)
} catch {
    FileHandle.standardError.write(Data("corral: \(error)\n".utf8))
    exit(ExitStatus.usage)
}
