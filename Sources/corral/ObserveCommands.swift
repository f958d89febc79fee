import CorralAgent
import Foundation

/// `corral metrics` and `corral monitor`: views of the status corrald already serves.
enum ObserveCommands {
    /// `corral metrics [--textfile PATH]`: the status in the Prometheus text format, on standard
    /// output or written atomically for node-exporter's textfile collector. corrald unreachable:
    /// `corral_up 0` is still written to the textfile (so stale figures do not linger), exit 3.
    static func metrics(_ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        var args = try Arguments(raw, flags: [])
        let socket = ClusterCommands.socket(&args)
        let textfile = args.option("textfile")
        try args.rejectUnknown()
        guard args.words.isEmpty else { throw UsageError("usage: corral metrics [--textfile PATH]") }
        if let textfile, !textfile.hasSuffix(".prom") {
            throw UsageError("--textfile must end in .prom, or node-exporter's textfile collector ignores it (e.g. /var/lib/prometheus/node-exporter/corral.prom)")
        }
        func emit(_ report: StatusReport?) -> Int32? {
            let text = StatusMetrics.render(report)
            guard let textfile else { print(text, terminator: ""); return nil }
            do { try StatusMetrics.writeAtomically(text, to: textfile) } catch {
                return ClusterCommands.fail("\(error) (does the directory exist, and may this user write to it?)")
            }
            return nil
        }
        let response: ControlResponse
        do { response = try ClusterCommands.send(.status, socket) } catch {
            if textfile != nil { _ = emit(nil) }
            throw error
        }
        switch response {
        case let .status(report):
            return emit(report) ?? ExitStatus.ok
        case let .error(text):
            if textfile != nil { _ = emit(nil) }
            return ClusterCommands.fail(text)
        case .reply, .events:
            return ClusterCommands.fail("unexpected reply to a status request")
        }
    }

    /// `corral monitor [--interval S] [--once] [--count N] [--json]`: a status frame every S
    /// seconds (default 2), the screen cleared before each on a terminal. `--once` prints one
    /// frame and exits with the status of that fetch; `--count N` stops after N frames.
    /// `--json` prints one status object per line instead of frames. A fetch that fails shows
    /// the reason and monitoring goes on; the exit status is that of the last fetch.
    static func monitor(_ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        var args = try Arguments(raw, flags: ["once", "json"])
        let socket = ClusterCommands.socket(&args)
        let interval = try args.int("interval", default: 2, min: 1)!
        let once = args.flag("once")
        let json = args.flag("json")
        let count = try args.int("count", min: 1)
        try args.rejectUnknown()
        guard args.words.isEmpty else { throw UsageError("usage: corral monitor [--interval SECONDS] [--once] [--count N] [--json]") }
        if once, let count, count != 1 { throw UsageError("--once and --count \(count) disagree; give one of them") }
        let frames = once ? 1 : count
        let clear = !json && isatty(1) == 1 && frames != 1
        var shown = 0
        var status = ExitStatus.ok
        while true {
            var frame: String
            do {
                switch try ClusterCommands.send(.status, socket) {
                case let .status(report):
                    status = ExitStatus.ok
                    frame = json ? String(decoding: JSONCoding.encode(report), as: UTF8.self) + "\n"
                        : StatusFrame.render(report, at: Date(), intervalSeconds: frames == 1 ? nil : interval)
                case let .error(text):
                    status = ExitStatus.failed
                    frame = json ? jsonError(text) : "corrald refused: \(text)\n"
                case .reply, .events:
                    status = ExitStatus.failed
                    frame = "unexpected reply to a status request\n"
                }
            } catch {
                if frames == 1 { throw error }
                status = error.exitStatus
                frame = json ? jsonError(error.description) : "cannot reach corrald: \(error)\n(retrying every \(interval) s)\n"
            }
            if clear { frame = "\u{1B}[H\u{1B}[2J" + frame }
            print(frame, terminator: "")
            fflush(nil)
            shown += 1
            if let frames, shown >= frames { return status }
            if !clear && !json { print("") }
            fflush(nil)
            sleep(UInt32(interval))
        }
    }

    /// `corral events [--last N] [--follow [--timeout SECONDS]] [--json]`: the cluster's history
    /// as this node recorded it (membership, fencing, failovers, migrations, drains, refusals),
    /// oldest first; `--last N` (default 50) the newest N. `--follow` then prints new lines as
    /// they come (polling each second) until interrupted or `--timeout` passes. `--json` prints
    /// one object per line.
    static func events(_ raw: ArraySlice<String>) throws(UsageError) -> Int32 {
        var args = try Arguments(raw, flags: ["follow", "json"])
        let socket = ClusterCommands.socket(&args)
        let last = try args.int("last", default: 50, min: 1)!
        let follow = args.flag("follow")
        let json = args.flag("json")
        let timeout = try args.int("timeout", min: 1)
        try args.rejectUnknown()
        guard args.words.isEmpty else { throw UsageError("usage: corral events [--last N] [--follow [--timeout SECONDS]] [--json]") }
        if timeout != nil && !follow { throw UsageError("--timeout only goes with --follow") }
        let deadline = timeout.map { Date().addingTimeInterval(Double($0)) }
        var after: UInt64?
        var reachable = true
        while true {
            do {
                switch try ClusterCommands.send(.events(after: after, limit: after == nil ? last : EventJournal.defaultCapacity), socket) {
                case let .events(entries):
                    if !reachable { reachable = true; if !json { print("(corrald answers again)") } }
                    for entry in entries { print(json ? String(decoding: JSONCoding.encode(entry), as: UTF8.self) : line(entry)) }
                    after = entries.last?.sequence ?? after ?? 0
                case let .error(text):
                    return ClusterCommands.fail(text)
                case .status, .reply:
                    return ClusterCommands.fail("unexpected reply to an events request")
                }
            } catch {
                guard follow, after != nil else { throw error }
                if reachable, !json { print("(cannot reach corrald: \(error); retrying)") }
                reachable = false
            }
            fflush(nil)
            guard follow else { return ExitStatus.ok }
            if let deadline, Date() >= deadline { return ExitStatus.ok }
            sleep(1)
        }
    }

    /// `2026-12-05T11:40:01.123Z  node       kvm2  up → fencing`
    static func line(_ entry: JournalEntry) -> String {
        let kind = entry.kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
        return "\(entry.time)  \(kind) \(entry.subject)  \(entry.message)"
    }

    private static func jsonError(_ text: String) -> String {
        String(decoding: JSONCoding.encode(["error": text]), as: UTF8.self) + "\n"
    }
}
