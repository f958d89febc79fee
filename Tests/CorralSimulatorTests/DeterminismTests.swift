import CorralSimulator
import Testing

/// A seed reproduces a run exactly (DESIGN §1): that is what makes a failing seed from the
/// campaign debuggable.
@Suite struct DeterminismTests {
    @Test(arguments: [1, 42, 977, 123_456_789] as [UInt64])
    func sameSeedSameRun(seed: UInt64) {
        let first = Simulation(scenario: RandomScenario.make(nodes: 5, vms: 12, seed: seed), seed: seed).run()
        let second = Simulation(scenario: RandomScenario.make(nodes: 5, vms: 12, seed: seed), seed: seed).run()
        #expect(first.text == second.text)
        #expect(first.json == second.json)
        #expect(first.coreSteps == second.coreSteps)
    }

    /// Different seeds give different clusters and fault schedules, hence different timelines
    /// (compared without the header line, which names the seed).
    @Test func differentSeedsDiffer() {
        let timelines = (1...5).map { seed in
            Simulation(scenario: RandomScenario.make(nodes: 5, vms: 12, seed: UInt64(seed)), seed: UInt64(seed)).run()
                .text.split(separator: "\n").dropFirst().joined(separator: "\n")
        }
        #expect(Set(timelines).count == timelines.count)
    }
}
