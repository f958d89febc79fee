import CorralSimulator
import Foundation
import Testing

/// Golden scenarios, like Pacemaker's scheduler regression files: a scenario in, the whole
/// timeline of a seed-1 run out, compared exactly. Any change in behaviour shows up as a
/// readable diff, and each expected timeline was read and checked by a person when blessed.
@Suite struct GoldenScenarioTests {
    @Test func thereAreGoldenScenarios() {
        #expect(GoldenFiles.names.count >= 5, "found \(GoldenFiles.names)")
    }

    @Test(arguments: GoldenFiles.names)
    func timelineMatches(_ name: String) throws {
        let report = Simulation(scenario: try GoldenFiles.scenario(name), seed: 1).run()
        let actual = report.text + "\n"
        #expect(report.violations.isEmpty, "\(name) breaks an invariant:\n\(report.violations.map(\.text).joined(separator: "\n"))")
        if GoldenFiles.blessing {
            try actual.write(to: GoldenFiles.sourceURL("\(name).txt"), atomically: true, encoding: .utf8)
            return
        }
        let expected = try GoldenFiles.expected(name)
        if actual != expected {
            Issue.record(Comment(rawValue: describeMismatch(name: name, expected: expected, actual: actual)))
        }
    }
}
