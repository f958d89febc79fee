import CorralCore
import Testing

/// Migration admission (DESIGN §4): with auto-tune off, a fixed number at once, uncapped; tuned,
/// only as many streams as fit the link minus the reserve, each at a rate it converges at.
@Suite struct MigrationSchedulerTests {
    /// One queued migration: a VM of this size and dirty rate leaving n1.
    struct Move {
        var memoryMiB: Int
        var dirty: Int = 5
        var to = "n2"
    }

    /// Four big nodes with measured links; `moves` queued from n1, named m0, m1, … in order.
    static func queued(_ moves: [Move], link: Int = 1_000, _ tune: (inout MigrationSettings) -> Void = { _ in }) -> ClusterState {
        var settings = ClusterSettings()
        tune(&settings.migration)
        var state = cluster("n1:262144 n2:262144 n3:262144 n4:262144", link: link, settings: settings)
        for (i, move) in moves.enumerated() {
            state.run(vm("m\(i)", move.memoryMiB), on: "n1", dirty: move.dirty)
            state.must(.queueMigration(vm: "m\(i)", to: state.id(move.to), purpose: .move))
        }
        return state
    }

    static func spread(_ count: Int, memoryMiB: Int = 2048, dirty: Int = 5) -> [Move] {
        (0..<count).map { Move(memoryMiB: memoryMiB, dirty: dirty, to: ["n2", "n3", "n4"][$0 % 3]) }
    }

    /// Starts a decision makes, as (VM, bandwidth) in the order issued.
    static func starts(_ commands: [Command], _ state: ClusterState) -> [(vm: String, bw: Int)] {
        commands.compactMap { if case let .startMigration(job, bw) = $0 { (state.jobs[job]!.vm, bw) } else { nil } }
    }

    /// Auto-tune off is the classic fixed limit: maxPerNode at once (0 = all), no bandwidth cap.
    @Test(arguments: [1, 2, 3, 0])
    func fixedLimitWhenAutoTuneIsOff(maxPerNode: Int) {
        let state = Self.queued(Self.spread(6)) { $0.autoTune = false; $0.maxPerNode = maxPerNode }
        let started = Self.starts(MigrationScheduler.decide(state), state)
        #expect(started.count == (maxPerNode == 0 ? 6 : maxPerNode))
        #expect(started.allSatisfy { $0.bw == 0 })
    }

    /// Auto-tune on but links not measured yet: no basis for tuning, so two at a time, uncapped.
    @Test func unmeasuredLinksFallBackToTwoAtATime() {
        let state = Self.queued(Self.spread(6), link: 0)
        let started = Self.starts(MigrationScheduler.decide(state), state)
        #expect(started.count == 2)
        #expect(started.allSatisfy { $0.bw == 0 })
    }

    /// Tuned admission never promises a link more than it has minus the reserve, and never gives
    /// one stream more than a stream can carry.
    @Test(arguments: [(1_000, 100, 300), (1_000, 0, 400), (1_100, 200, 0), (500, 50, 1_000), (10_000, 500, 1_200)])
    func tunedSharesFitTheLink(link: Int, reserve: Int, stream: Int) {
        let state = Self.queued(Self.spread(9), link: link) { $0.reserveMiBps = reserve; $0.streamMiBps = stream }
        let commands = MigrationScheduler.decide(state)
        var tx: [NodeID: Int] = [:], rx: [NodeID: Int] = [:]
        for case let .startMigration(id, bw) in commands {
            let job = state.jobs[id]!
            #expect(bw > 0, "tuned migrations are always capped")
            if stream > 0 { #expect(bw <= stream) }
            tx[job.source, default: 0] += bw
            rx[job.destination, default: 0] += bw
        }
        #expect(!tx.isEmpty, "something must start")
        for (_, used) in tx.merging(rx, uniquingKeysWith: max) { #expect(used <= link - reserve) }
    }

    /// A VM that dirties more than a quarter of a stream gets a full stream and runs alone on its
    /// source: nothing else from n1 starts with it, and nothing starts ahead of it while it waits.
    /// A stream that measurably sends well under its share (say 400 of 1000 MiB/s: CPU-bound)
    /// leaves the rest of the link to the next migration; one that sends its share does not.
    @Test(arguments: [(400, true), (950, false)])
    func underusedLinkAdmitsAnotherStream(sending: Int, admitsMore: Bool) {
        var state = Self.queued(Self.spread(3, memoryMiB: 8192))
        var first: [(vm: String, bw: Int)] = []
        for command in MigrationScheduler.decide(state) {
            if case let .startMigration(job, bw) = command {
                first.append((state.jobs[job]!.vm, bw))
                state.must(command)
            }
        }
        #expect(first.count == 1, "one stream fills a 1000 MiB/s link on paper")
        let job = state.jobs.values.first { $0.state == .running }!
        state.must(.migrationProgress(job: job.id, MigrationProgress(totalMiB: 8192, remainingMiB: 6000, rateMiBps: sending, dirtyRateMiBps: 5)))
        let more = Self.starts(MigrationScheduler.decide(state), state)
        #expect(more.isEmpty == !admitsMore)
    }

    @Test func hotVMRunsAlone() throws {
        let moves = [Move(memoryMiB: 4096, dirty: 100, to: "n2"), Move(memoryMiB: 2048, to: "n3"), Move(memoryMiB: 2048, to: "n4")]
        var state = Self.queued(moves) { $0.streamMiBps = 300 }
        let first = Self.starts(MigrationScheduler.decide(state), state)
        #expect(first.map(\.vm) == ["m0"])
        #expect(first.first?.bw == 300)

        // While it runs, the cold ones stay queued.
        for case let .startMigration(id, bw) in MigrationScheduler.decide(state) { state.must(.startMigration(job: id, bandwidthMiBps: bw)) }
        #expect(Self.starts(MigrationScheduler.decide(state), state).isEmpty)
    }

    /// Something already leaving n1: the hot VM waits, and the cold ones queued behind it wait too.
    @Test func hotVMWaitsForAnIdleSource() {
        let moves = [Move(memoryMiB: 1024, to: "n3"), Move(memoryMiB: 4096, dirty: 100, to: "n2"), Move(memoryMiB: 2048, to: "n4")]
        var state = Self.queued(moves) { $0.streamMiBps = 300; $0.maxCluster = 1 }
        state.must(.startMigration(job: state.activeJob(for: "m0")!.id, bandwidthMiBps: 300))
        state.settings.migration.maxCluster = 0
        #expect(Self.starts(MigrationScheduler.decide(state), state).isEmpty)
    }

    /// A VM dirtying 90 % of a stream or more would never converge: failed at once with a reason
    /// that says so, not started to spin for ever.
    @Test(arguments: [(269, false), (270, true), (1_000, true)])
    func nonConvergentVMIsFailed(dirty: Int, fails: Bool) {
        let state = Self.queued([Move(memoryMiB: 4096, dirty: dirty)]) { $0.streamMiBps = 300 }
        let commands = MigrationScheduler.decide(state)
        let reasons = commands.compactMap { if case let .migrationFailed(_, why) = $0 { why } else { nil } }
        if fails {
            #expect(reasons == ["cannot converge: dirty rate \(dirty) MiB/s is at or above 90% of the 300 MiB/s a stream gets here"])
            #expect(Self.starts(commands, state).isEmpty)
        } else {
            #expect(reasons.isEmpty)
            #expect(Self.starts(commands, state).map(\.vm) == ["m0"])
        }
    }

    /// The longest migration goes first, so the drain's tail is short migrations, not one long one.
    @Test func longestFirst() {
        let moves = [Move(memoryMiB: 1024, to: "n2"), Move(memoryMiB: 8192, to: "n3"), Move(memoryMiB: 4096, to: "n4")]
        let state = Self.queued(moves, link: 10_000) { $0.streamMiBps = 100 }
        #expect(Self.starts(MigrationScheduler.decide(state), state).map(\.vm) == ["m1", "m2", "m0"])
        let one = Self.queued(moves, link: 10_000) { $0.streamMiBps = 100; $0.maxCluster = 1 }
        #expect(Self.starts(MigrationScheduler.decide(one), one).map(\.vm) == ["m1"])
    }

    /// The operator's cluster-wide maximum holds, tuned or not, counting what already runs.
    @Test(arguments: [true, false])
    func maxClusterHonoured(autoTune: Bool) {
        var state = Self.queued(Self.spread(6), link: 10_000) { $0.autoTune = autoTune; $0.maxCluster = 3; $0.streamMiBps = 100 }
        #expect(Self.starts(MigrationScheduler.decide(state), state).count == 3)
        state.must(.startMigration(job: state.activeJob(for: "m0")!.id, bandwidthMiBps: 100))
        #expect(Self.starts(MigrationScheduler.decide(state), state).count == 2)
    }

    /// A measured set-up and switch-over time moves `setupMs` halfway towards it, within
    /// 100–10,000 ms; an unchanged figure is refused (no new state version).
    @Test func measuredOverheadMovesTheStartAhead() {
        var state = cluster("n1:8192 n2:8192")
        #expect(state.settings.migration.setupMs == 500)
        state.must(.migrationOverheadMeasured(ms: 2_500))
        #expect(state.settings.migration.setupMs == 1_500)
        state.must(.migrationOverheadMeasured(ms: 100_000))
        #expect(state.settings.migration.setupMs == 10_000)
        state.must(.migrationOverheadMeasured(ms: 0))
        #expect(state.settings.migration.setupMs == 5_000)
        var settled = state
        settled.settings.migration.setupMs = 100
        #expect(settled.refusal(of: .migrationOverheadMeasured(ms: 0)) == "migration set-up time unchanged")
    }

    /// Progress raises an unconfigured link to what its migrations send together, never a
    /// link the node configured (rates overshoot a shaped link).
    @Test(arguments: [0, 20])
    func progressRaisesOnlyAnUnconfiguredLink(configured: Int) {
        var state = cluster("n1:8192 n2:8192")
        if configured > 0 {
            state.must(.registerNode(NodeSpec(id: state.id("n1"), name: "n1", capacity: state.nodes[state.id("n1")]!.capacity, linkMiBps: configured)))
        }
        state.run(vm("a", 512), on: "n1")
        let job = state.migrate("a", to: "n2")
        state.must(.migrationProgress(job: job, MigrationProgress(totalMiB: 512, remainingMiB: 400, rateMiBps: 38, dirtyRateMiBps: 0)))
        #expect(state.nodes[state.id("n1")]?.linkMiBps == (configured > 0 ? configured : 38))
        #expect(state.nodes[state.id("n1")]?.linkConfigured == (configured > 0))
    }
}
