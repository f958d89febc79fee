@testable import CorralAgent
import CorralCore
import Foundation
import Testing

/// The history file: numbered lines kept across restarts, bounded, unreadable lines skipped,
/// and a disk that refuses writes costs the file its lines, never the agent.
@Suite struct EventJournalTests {
    static func lines(_ count: Int, from first: Int = 0) -> [ClusterEvent] {
        (first..<first + count).map { ClusterEvent(.vm, "vm\($0)", "added") }
    }

    @Test func linesSurviveARestartAndKeepTheirNumbers() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/events.jsonl"
        let first = EventJournal(path: path)
        first.record(Self.lines(3))
        first.flush()
        let second = EventJournal(path: path)
        #expect(second.entries(after: nil).map(\.sequence) == [1, 2, 3])
        second.record(Self.lines(1, from: 3))
        #expect(second.entries(after: 2).map(\.subject) == ["vm2", "vm3"])
        #expect(second.entries(after: nil, limit: 1).map(\.sequence) == [4])
    }

    @Test func theFileStaysBoundedAndUnreadableLinesAreSkipped() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/events.jsonl"
        let journal = EventJournal(path: path, capacity: 10)
        for k in 0..<25 { journal.record(Self.lines(1, from: k)) }
        journal.flush()
        let kept = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(kept.count <= 20, "rewritten at twice the capacity")
        #expect(journal.entries(after: nil).map(\.sequence) == Array(16...25))
        try (try String(contentsOfFile: path, encoding: .utf8) + "garbage{\n").write(toFile: path, atomically: true, encoding: .utf8)
        let reloaded = EventJournal(path: path, capacity: 10)
        #expect(reloaded.entries(after: nil).map(\.sequence) == Array(16...25))
        reloaded.record(Self.lines(1))
        #expect(reloaded.entries(after: 25).map(\.sequence) == [26])
    }

    @Test func countsTheKindsMetricsShow() {
        let journal = EventJournal(path: nil)
        journal.record([
            ClusterEvent(.node, "kvm2", "fencing → fenced"),
            ClusterEvent(.vm, "db", "running → starting on kvm1 (failed over from kvm2)"),
            ClusterEvent(.vm, "web", "running → starting on kvm3 (from kvm1)"),
            ClusterEvent(.vm, "app", "pending → starting on kvm3 (after failover from kvm2)"),
            ClusterEvent(.migration, "migration 4", "failed: db kvm1 → kvm3: connection refused"),
            ClusterEvent(.refusal, "kvm1", "no quorum"),
        ])
        #expect(journal.counts == ["fencing": 1, "failover": 2, "migration_failed": 1, "refusal": 1])
    }

    @Test func aFileThatCannotBeWrittenOnlyCountsDrops() {
        let journal = EventJournal(path: "/nonexistent-corral-dir/events.jsonl")
        journal.record(Self.lines(2))
        journal.flush()
        #expect(journal.droppedWrites == 2)
        #expect(journal.entries(after: nil).count == 2, "memory keeps them")
    }
}
