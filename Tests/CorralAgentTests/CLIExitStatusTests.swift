@testable import CorralAgent
import CorralCore
import Foundation
import Glibc
import Testing

/// The built `corral` program (next to this test bundle) against a stand-in corrald serving a
/// hand-made status on a real control socket: `metrics` prints exactly the exposition text,
/// `--textfile` writes it, `monitor --once` prints one frame, `--json` on a change prints its
/// result, and the exit statuses are 0 ok, 1 refused, 2 usage, 3 unreachable.
@Suite(.serialized) struct CLIExitStatusTests {
    struct Run: Sendable { var status: Int32; var stdout: String; var stderr: String }

    static var corral: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // On Linux the tests run from <build>/release/CorralPackageTests.xctest.
        if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
        return directory.appendingPathComponent("corral").path
    }

    static func run(_ arguments: [String]) async -> Run {
        await offCooperativePool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: corral)
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment.removeValue(forKey: "CORRAL_SOCKET")
            process.environment = environment
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            do { try process.run() } catch { return Run(status: -1, stdout: "", stderr: "cannot run \(corral): \(error)") }
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
        }
    }

    /// What the stand-in corrald's history holds.
    static let history = [
        JournalEntry(sequence: 1, time: "2026-12-05T11:40:01.123Z", kind: .node, subject: "kvm2", message: "up → fencing"),
        JournalEntry(sequence: 2, time: "2026-12-05T11:40:07.456Z", kind: .vm, subject: "db", message: "running → running on kvm1 (failed over from kvm2)"),
    ]

    /// A stand-in corrald: status requests get `report`, changes get `reply`, events `history`.
    static func withFakeAgent(reply: RequestReply, _ body: (String, ScratchDirectory) async throws -> Void) async throws {
        let report = try StatusMetricsTests.report()
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let socket = scratch.path + "/corral.sock"
        let server = try ControlSocketServer(path: socket, allowedGroup: nil) { line, _ in
            switch try? JSONCoding.decode(ControlRequest.self, from: line) {
            case .status?: JSONCoding.encode(ControlResponse.status(report))
            case .operate?: JSONCoding.encode(ControlResponse.reply(reply))
            case let .events(after, limit)?: JSONCoding.encode(ControlResponse.events(Array(history.filter { $0.sequence > after ?? 0 }.suffix(limit))))
            case nil: JSONCoding.encode(ControlResponse.error("malformed request"))
            }
        }
        let serving = Task { await server.run() }
        defer { server.stop() }
        try await body(socket, scratch)
        server.stop()
        await serving.value
    }

    @Test func theProgramIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.corral), "build corral first: \(Self.corral)")
    }

    @Test func metricsAndTextfile() async throws {
        try await Self.withFakeAgent(reply: .done("ok")) { socket, scratch in
            let printed = await Self.run(["metrics", "--socket", socket])
            #expect(printed.status == 0, "\(printed.stderr)")
            #expect(printed.stdout == StatusMetricsTests.expected)
            let file = scratch.path + "/corral.prom"
            let written = await Self.run(["metrics", "--socket", socket, "--textfile", file])
            #expect(written.status == 0 && written.stdout.isEmpty, "\(written.stderr)")
            #expect((try? String(contentsOfFile: file, encoding: .utf8)) == StatusMetricsTests.expected)
            // corrald gone: the textfile says corral_up 0, and the exit status is 3.
            let gone = await Self.run(["metrics", "--socket", scratch.path + "/nobody.sock", "--textfile", file])
            #expect(gone.status == 3)
            #expect((try? String(contentsOfFile: file, encoding: .utf8)) == StatusMetrics.render(nil))
            let badName = await Self.run(["metrics", "--socket", socket, "--textfile", scratch.path + "/corral.txt"])
            #expect(badName.status == 2)
        }
    }

    @Test func monitorOnceAndJSON() async throws {
        try await Self.withFakeAgent(reply: .done("ok")) { socket, _ in
            let once = await Self.run(["monitor", "--once", "--socket", socket])
            #expect(once.status == 0, "\(once.stderr)")
            #expect(once.stdout.hasPrefix("Corral on kvm1 (id 1)  "))
            #expect(once.stdout.contains("\nNodes: 1 up, 1 draining, 1 fenced\n"))
            #expect(!once.stdout.contains("\u{1B}"), "no escape sequences off a terminal")
            let frames = await Self.run(["monitor", "--count", "2", "--interval", "1", "--json", "--socket", socket])
            let lines = frames.stdout.split(separator: "\n")
            #expect(frames.status == 0 && lines.count == 2)
            #expect(lines.allSatisfy { (try? JSONCoding.decode(StatusReport.self, from: Array($0.utf8))) == (try? StatusMetricsTests.report()) })
        }
    }

    @Test func eventsListFollowAndJSON() async throws {
        try await Self.withFakeAgent(reply: .done("ok")) { socket, _ in
            let listed = await Self.run(["events", "--socket", socket])
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout == """
                2026-12-05T11:40:01.123Z  node       kvm2  up → fencing
                2026-12-05T11:40:07.456Z  vm         db  running → running on kvm1 (failed over from kvm2)

                """)
            let newest = await Self.run(["events", "--last", "1", "--json", "--socket", socket])
            #expect(newest.stdout.split(separator: "\n").map { try? JSONCoding.decode(JournalEntry.self, from: Array($0.utf8)) } == [Self.history[1]])
            let followed = await Self.run(["events", "--follow", "--timeout", "1", "--socket", socket])
            #expect(followed.status == 0 && followed.stdout == listed.stdout, "nothing new: the same two lines, then it stops")
            let bad = await Self.run(["events", "--timeout", "5", "--socket", socket])
            #expect(bad.status == 2)
        }
    }

    @Test func changesPrintJSONAndRefusalsExitOne() async throws {
        try await Self.withFakeAgent(reply: .refused("no quorum: try again when a majority of nodes is up")) { socket, _ in
            let refused = await Self.run(["vm", "start", "db", "--json", "--socket", socket])
            #expect(refused.status == 1)
            #expect(refused.stdout == #"{"message":"no quorum: try again when a majority of nodes is up","result":"refused"}"# + "\n")
            #expect(refused.stderr == "corral: no quorum: try again when a majority of nodes is up\n")
            let status = await Self.run(["node", "list", "--json", "--socket", socket])
            #expect(status.status == 0 && status.stdout.hasPrefix(#"[{"drainFailures":[],"id":1,"#))
        }
        try await Self.withFakeAgent(reply: .plan(["start db on kvm1"])) { socket, _ in
            let plan = await Self.run(["vm", "start", "db", "--what-if", "--json", "--socket", socket])
            #expect(plan.status == 0)
            #expect(plan.stdout == #"{"plan":["start db on kvm1"],"result":"plan"}"# + "\n")
        }
    }

    @Test(arguments: [
        (["vm", "frobnicate", "x"], 2),
        (["status", "--bogus"], 2),
        (["vm", "add", "x"], 2),
        (["monitor", "--once", "--count", "3"], 2),
        (["status", "--socket", "/nonexistent/corral.sock"], 3),
        (["monitor", "--once", "--socket", "/nonexistent/corral.sock"], 3),
        (["vm", "start", "db", "--socket", "/nonexistent/corral.sock"], 3),
        (["patch", "run"], 2),
        (["patch", "run", "--hook", "true", "--reboot-timeout", "0s"], 2),
        (["patch", "run", "--hook", "true", "--failback", "later"], 2),
        (["patch", "run", "--hook", "true", "--keep-running", "web"], 2),
        (["patch", "status", "--socket", "/nonexistent/corral.sock"], 3),
    ])
    func exitStatuses(arguments: [String], status: Int) async {
        let run = await Self.run(arguments)
        #expect(Int(run.status) == status, "corral \(arguments.joined(separator: " ")): \(run.stderr)")
        #expect(run.stderr.hasPrefix("corral: "))
        if status == 3 { #expect(run.stderr.contains("is corrald running?") && run.stderr.contains("systemctl status corrald")) }
    }
}
