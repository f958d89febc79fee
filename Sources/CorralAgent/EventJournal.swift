import CorralCore
import Dispatch
import Foundation
import Glibc
import Synchronization

/// One numbered, timestamped history line as `corral events` shows it.
public struct JournalEntry: Codable, Sendable, Equatable {
    /// Increases by one per line on this node, across restarts (`--follow` asks for lines after one).
    public var sequence: UInt64
    /// UTC, ISO 8601 with milliseconds.
    public var time: String
    public var kind: ClusterEvent.Kind
    public var subject: String
    public var message: String
}

/// The cluster's history as this node saw it: the last `capacity` lines in memory for
/// `corral events`, and appended to `events.jsonl` in the state directory so a restart keeps
/// them. Bounded both ways: the file is rewritten with the last `capacity` lines once it holds
/// twice as many. Writing never blocks the agent's loop (a serial queue does it) and never
/// stops it: a line the disk refuses is counted and dropped from the file, not from memory.
public final class EventJournal: Sendable {
    public static let defaultCapacity = 2_000

    private struct Lines {
        var entries: [JournalEntry] = []
        var nextSequence: UInt64 = 1
        var linesInFile = 0
        var droppedWrites = 0
        var counts: [String: Int] = [:]
    }

    /// The kinds of line counted for metrics (`corral_events_total{kind}`).
    public static let countedKinds = ["fencing", "failover", "migration_failed", "refusal"]

    /// Which counted kind `event` is, if any.
    static func countedKind(_ event: ClusterEvent) -> String? {
        switch event.kind {
        case .node where event.message.hasSuffix("→ fenced"): "fencing"
        case .vm where event.message.contains("(failed over from ") || event.message.contains("(after failover"): "failover"
        case .migration where event.message.hasPrefix("failed:"): "migration_failed"
        case .refusal: "refusal"
        default: nil
        }
    }

    public let path: String?
    public let capacity: Int
    private let lines: Mutex<Lines>
    private let queue = DispatchQueue(label: "corral.event-journal")

    /// Loads what an earlier run left at `path` (unreadable lines are skipped; a file over
    /// 16 MiB is not read at all); nil `path` keeps the history in memory only.
    public init(path: String?, capacity: Int = EventJournal.defaultCapacity) {
        self.path = path
        self.capacity = max(1, capacity)
        var loaded = Lines()
        if let path, let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int,
           size <= 16 << 20, let data = FileManager.default.contents(atPath: path) {
            let decoded = data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONCoding.decode(JournalEntry.self, from: Array($0)) }
            loaded.linesInFile = decoded.count
            loaded.entries = Array(decoded.suffix(self.capacity))
            loaded.nextSequence = (decoded.map(\.sequence).max() ?? 0) + 1
        }
        lines = Mutex(loaded)
    }

    /// Numbers, stamps and keeps `events`; the file append happens off the caller's thread.
    public func record(_ events: [ClusterEvent], at date: Date = Date()) {
        guard !events.isEmpty else { return }
        let time = date.ISO8601Format(AgentLog.timestamp) + "Z"
        let (added, compact) = lines.withLock { lines -> ([JournalEntry], [JournalEntry]?) in
            let added = events.map { event -> JournalEntry in
                defer { lines.nextSequence += 1 }
                return JournalEntry(sequence: lines.nextSequence, time: time, kind: event.kind, subject: event.subject, message: event.message)
            }
            lines.entries.append(contentsOf: added)
            for kind in events.compactMap(Self.countedKind) { lines.counts[kind, default: 0] += 1 }
            if lines.entries.count > capacity { lines.entries.removeFirst(lines.entries.count - capacity) }
            lines.linesInFile += added.count
            guard lines.linesInFile >= 2 * capacity else { return (added, nil) }
            lines.linesInFile = lines.entries.count
            return (added, lines.entries)
        }
        guard let path else { return }
        queue.async { [self] in
            let ok = compact.map { rewrite($0, path) } ?? append(added, path)
            if !ok { lines.withLock { $0.droppedWrites += added.count } }
        }
    }

    /// Lines after `sequence` (all kept lines for nil), oldest first, at most `limit` of the newest.
    public func entries(after sequence: UInt64?, limit: Int = EventJournal.defaultCapacity) -> [JournalEntry] {
        lines.withLock { lines in
            let newer = lines.entries.filter { sequence == nil || $0.sequence > sequence! }
            return Array(newer.suffix(max(1, limit)))
        }
    }

    /// Counted kinds of line recorded since start (not those loaded from the file).
    public var counts: [String: Int] { lines.withLock { $0.counts } }

    /// Lines that could not be written to the file since start.
    public var droppedWrites: Int { lines.withLock { $0.droppedWrites } }

    /// Waits until every line recorded so far has reached the file (or failed to).
    public func flush() { queue.sync {} }

    private func append(_ entries: [JournalEntry], _ path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return (try? POSIXSupport.writeAll(Self.text(entries), to: fd)) != nil
    }

    /// Replaces the file by the kept lines (write to a temporary file, then rename).
    private func rewrite(_ entries: [JournalEntry], _ path: String) -> Bool {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return false }
        let written = (try? POSIXSupport.writeAll(Self.text(entries), to: fd)) != nil
        close(fd)
        guard written, rename(temporary, path) == 0 else { unlink(temporary); return false }
        return true
    }

    private static func text(_ entries: [JournalEntry]) -> [UInt8] {
        entries.flatMap { JSONCoding.encode($0) + [UInt8(ascii: "\n")] }
    }
}
