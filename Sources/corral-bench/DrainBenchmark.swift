import CorralSimulator
import Foundation

/// `corral-bench drain`: each mix drained four ways; makespans and their ratio to LB.
enum DrainBenchmark {
    static func run(json: Bool) {
        var rows: [String] = []
        if !json {
            print("drain makespan in the simulator (s), ratio to the lower bound LB in brackets")
            print("mix".padding(toLength: 20, withPad: " ", startingAt: 0) + "LB".padding(toLength: 9, withPad: " ", startingAt: 0)
                  + DrainStrategy.allCases.map { $0.rawValue.padding(toLength: 19, withPad: " ", startingAt: 0) }.joined())
        }
        for mix in DrainMix.all {
            let lb = mix.lowerBound
            let results = DrainStrategy.allCases.map { ($0, drainMakespan(mix, $0)) }
            if json {
                let cells = results.map { s, r in
                    "\"\(s.rawValue)\":{\"seconds\":\(r.seconds.map { fmt($0) } ?? "null"),\"ratio\":\(r.seconds.map { fmt($0 / lb) } ?? "null"),\"downtimeMs\":\(fmt(r.downtimeMs)),\"failedMigrations\":\(r.failed)}"
                }
                rows.append("{\"mix\":\"\(mix.name)\",\"vms\":\(mix.vms.count),\"lowerBound\":\(fmt(lb)),\(cells.joined(separator: ","))}")
            } else {
                let cells = results.map { _, r in
                    (r.seconds.map { "\(fmt($0)) (\(fmt($0 / lb)))" } ?? "did not finish").padding(toLength: 19, withPad: " ", startingAt: 0)
                }
                print(mix.name.padding(toLength: 20, withPad: " ", startingAt: 0) + fmt(lb).padding(toLength: 9, withPad: " ", startingAt: 0) + cells.joined())
            }
        }
        if json { print("[\(rows.joined(separator: ","))]") }
    }
}
