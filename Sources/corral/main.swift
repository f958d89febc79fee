import Foundation

/// The operator's command line. Thin: parse, call, print.
let usage = """
usage: corral simulate SCENARIO.json [--seed S] [--json]
       corral simulate --random [--nodes N] [--vms V] [--faults F] [--seeds A..B] [--json]
"""

let argv = CommandLine.arguments.dropFirst()
do {
    switch argv.first {
    case "simulate": exit(try SimulateCommand.run(argv.dropFirst()))
    case "-h", "--help", "help", nil:
        print(usage)
    default:
        throw UsageError("unknown command \(argv.first!)\n\(usage)")
    }
} catch {
    FileHandle.standardError.write(Data("corral: \(error)\n".utf8))
    exit(2)
}
