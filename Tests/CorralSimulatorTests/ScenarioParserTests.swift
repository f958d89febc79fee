import CorralCore
import CorralSimulator
import Foundation
import Testing

/// A scenario file with a mistake is rejected with the field and the problem, so the author
/// can fix it at once instead of wondering why the run did something else.
@Suite struct ScenarioParserTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var json: String
        var error: String
        var testDescription: String { error }
    }

    /// A small valid cluster with one extra piece spliced in.
    static func file(nodes: String = #"[{"name":"n1","memoryMiB":4096},{"name":"n2","memoryMiB":4096}]"#,
                     vms: String = #"[{"name":"a","memoryMiB":512}]"#, events: String = "[]", extra: String = "") -> String {
        #"{"nodes":\#(nodes),"vms":\#(vms),"events":\#(events)\#(extra)}"#
    }

    static let actions = "crash, powerOn, partition, heal, hang, resume, crashVM, drain, resumeNode, move, addVM, removeVM, startVM, stopVM, pause, config, hangAgent, crashAfterSwitchover, watchdogFails, patch, addVolume, createDisk, moveVolume"

    static let bad: [Case] = [
        .init(json: file(nodes: #"[{"name":"n1","memoryMiB":4096,"colour":"red"}]"#),
              error: "nodes[0].colour: unknown field (known: name, memoryMiB, vcpus, linkMbps)"),
        .init(json: file(extra: #","evnets":[]"#),
              error: "evnets: unknown field (known: name, nodes, vms, settings, timing, events, duration)"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":-5}]"#), error: "vms[0].memoryMiB: expected a positive whole number, got -5"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":1.5}]"#), error: "vms[0].memoryMiB: expected a positive whole number, got 1.5"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":"lots"}]"#), error: "vms[0].memoryMiB: expected a number, got lots"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":512,"preferred":["n9"]}]"#), error: "vms[0].preferred: n9 is not a node of this scenario"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":512,"priority":"urgent"}]"#), error: "vms[0].priority: expected high, medium or low, got urgent"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":512,"ha":1}]"#), error: "vms[0].ha: expected true or false"),
        .init(json: file(vms: #"[{"name":"a b","memoryMiB":512}]"#), error: "vms[0]: VM name a b contains ' '; use letters, digits, '-', '_' and '.'"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":512,"disks":["a.img"]}]"#), error: "vms[0]: disk a.img must be an absolute path"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":512},{"name":"a","memoryMiB":256}]"#), error: "vms: VM a is listed twice"),
        .init(json: file(nodes: #"[{"name":"n1","memoryMiB":1},{"name":"n1","memoryMiB":2}]"#), error: "nodes: node n1 is listed twice"),
        .init(json: file(vms: #"[{"name":"a","memoryMiB":512,"disks":["/csv/x.img"]},{"name":"b","memoryMiB":512,"disks":["/csv/x.img"]}]"#),
              error: "vms[1].disks: disk /csv/x.img already belongs to VM a"),
        .init(json: #"{"vms":[]}"#, error: "nodes: missing"),
        .init(json: file(nodes: "[]", vms: "[]"), error: "nodes: at least one node is needed"),
        .init(json: "[1, 2]", error: "(top level): expected an object"),
        .init(json: file(events: #"[{"at":5,"partition":[["n1"],["n9"]]}]"#), error: "events[0].partition[1]: n9 is not a node of this scenario"),
        .init(json: file(events: #"[{"at":5,"partition":[[]]}]"#), error: "events[0].partition[0]: expected a non-empty list of node names"),
        .init(json: file(events: #"[{"at":5,"drain":"n1","via":"n9"}]"#), error: "events[0].via: n9 is not a node of this scenario"),
        .init(json: file(events: #"[{"at":5,"crash":"n9"}]"#), error: "events[0].crash: n9 is not a node of this scenario"),
        .init(json: file(events: #"[{"at":5,"move":"a","to":"n9"}]"#), error: "events[0].to: n9 is not a node of this scenario"),
        .init(json: file(events: #"[{"at":5,"crash":"n1","heal":true}]"#), error: "events[0]: needs exactly one action of \(actions); found crash, heal"),
        .init(json: file(events: #"[{"at":5}]"#), error: "events[0]: needs exactly one action of \(actions); found none"),
        .init(json: file(events: #"[{"at":-1,"heal":true}]"#), error: "events[0].at: must not be negative"),
        .init(json: file(events: #"[{"heal":true}]"#), error: "events[0].at: missing"),
        .init(json: file(events: #"[{"at":5,"addVM":{"name":"b","memoryMiB":0}}]"#), error: "events[0].addVM.memoryMiB: expected a positive whole number, got 0"),
        .init(json: file(extra: #","settings":{"leaseMs":1000,"heartbeatMs":600}"#),
              error: "settings.heartbeatMs: must be at most half of leaseMs (1000) so a lease can be renewed in time"),
        .init(json: file(extra: #","timing":{"detectionMs":0}"#), error: "timing.detectionMs: expected a positive whole number, got 0"),
    ]

    @Test(arguments: bad)
    func badFileNamesFieldAndProblem(_ c: Case) {
        do {
            _ = try ScenarioParser.parse(Data(c.json.utf8))
            Issue.record("accepted a bad file; expected: \(c.error)")
        } catch {
            #expect(error.description == c.error)
        }
    }

    @Test func notJSON() {
        do {
            _ = try ScenarioParser.parse(Data("{nodes: [".utf8))
            Issue.record("parsed a file that is not JSON")
        } catch {
            #expect(error.path == "")
            #expect(error.description.hasPrefix("not valid JSON"))
        }
    }

    /// Every field of a valid file lands where it should, in the core's units.
    @Test func validFileParses() throws {
        let json = #"""
        {
          "name": "demo",
          "nodes": [{"name": "n1", "memoryMiB": 8192, "vcpus": 8, "linkMbps": 8000}, {"name": "n2", "memoryMiB": 4096}],
          "vms": [{"name": "db", "memoryMiB": 2048, "vcpus": 2, "priority": "high", "preferred": ["n2", "n1"],
                   "antiAffinity": "db", "ha": false, "dirtyMiBps": 30, "disks": ["/csv/db.img"], "running": false}],
          "settings": {"leaseMs": 3000, "marginMs": 700, "maxPerNode": 2, "autoTune": false, "streamMbps": 800},
          "timing": {"detectionMs": 900},
          "events": [
            {"at": 12.5, "partition": [["n1"], ["n2"]]},
            {"at": 2, "resumeNode": "n1", "failback": true, "via": "n2"},
            {"at": 20, "config": "migration.max-cluster", "value": "3"}
          ],
          "duration": 60
        }
        """#
        let s = try ScenarioParser.parse(Data(json.utf8))
        #expect(s.name == "demo")
        #expect(s.nodes == [.init(name: "n1", capacity: Capacity(memoryMiB: 8192, vcpus: 8), linkMiBps: 953),
                            .init(name: "n2", capacity: Capacity(memoryMiB: 4096, vcpus: 16), linkMiBps: 1192)])
        #expect(s.vms == [.init(spec: VMSpec(name: "db", memoryMiB: 2048, vcpus: 2, priority: .high, preferredOwners: ["n2", "n1"],
                                             antiAffinityClass: "db", highlyAvailable: false, disks: ["/csv/db.img"]),
                                dirtyRateMiBps: 30, running: false)])
        #expect(s.settings.recovery.leaseMs == 3000 && s.settings.recovery.marginMs == 700)
        #expect(s.settings.migration.maxPerNode == 2 && !s.settings.migration.autoTune && s.settings.migration.streamMiBps == 95)
        #expect(s.settings.expectedVotes == 2)
        #expect(s.timing.detectionMs == 900)
        #expect(s.events == [.init(atMs: 2_000, .request(.resumeNode("n1", failback: true), via: "n2")),
                             .init(atMs: 12_500, .partition([["n1"], ["n2"]])),
                             .init(atMs: 20_000, .request(.setConfig(key: "migration.max-cluster", value: "3"), via: nil))])
        #expect(s.durationMs == 60_000)
    }

    /// Every checked-in golden scenario is itself a valid file.
    @Test(arguments: GoldenFiles.names)
    func goldenFilesParse(_ name: String) throws {
        let scenario = try GoldenFiles.scenario(name)
        #expect(scenario.name == name, "the file's name field should match its file name")
    }
}
