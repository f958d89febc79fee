import CorralCore

/// What a simulated run produced: a timeline, the final placement, and every violation.
public struct SimulationReport: Sendable {
    public struct Entry: Sendable, Equatable {
        public var atMs: Int64
        public var text: String
    }
    public var scenario: String
    public var seed: UInt64
    public var timeline: [Entry] = []
    public var violations: [Entry] = []
    /// VM → node it runs on (hypervisor truth) at the end; "-" when stopped.
    public var placement: [(vm: String, node: String)] = []
    public var nodeStates: [(node: String, state: String)] = []
    /// When each node first reached each state, from the replicated state (for benchmarks).
    public var nodeStateTimes: [String: Int64] = [:]
    public var completedMigrations = 0
    public var failedMigrations = 0
    public var totalDowntimeMs = 0.0
    public var coreSteps = 0
    public var endMs: Int64 = 0

    public var text: String {
        var lines = ["scenario \(scenario) seed \(seed)"]
        lines += timeline.map { "\(Self.clock($0.atMs))  \($0.text)" }
        lines.append("final placement:")
        lines += placement.map { "  \($0.vm.padding(toLength: 16))\($0.node)" }
        lines.append("final nodes:")
        lines += nodeStates.map { "  \($0.node.padding(toLength: 16))\($0.state)" }
        lines.append("violations: \(violations.count)")
        lines += violations.map { "  \(Self.clock($0.atMs))  \($0.text)" }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        func q(_ s: String) -> String { JSONText.quote(s) }
        let timeline = self.timeline.map { "{\"t\":\(Double($0.atMs) / 1000),\"event\":\(q($0.text))}" }
        let violations = self.violations.map { "{\"t\":\(Double($0.atMs) / 1000),\"violation\":\(q($0.text))}" }
        let placement = self.placement.map { "\(q($0.vm)):\(q($0.node))" }
        let nodes = nodeStates.map { "\(q($0.node)):\(q($0.state))" }
        return "{\"scenario\":\(q(scenario)),\"seed\":\(seed),\"timeline\":[\(timeline.joined(separator: ","))],"
            + "\"placement\":{\(placement.joined(separator: ","))},\"nodes\":{\(nodes.joined(separator: ","))},"
            + "\"violations\":[\(violations.joined(separator: ","))]}"
    }

    static func clock(_ ms: Int64) -> String {
        let s = "\(ms / 1000).\(String(1000 + ms % 1000).dropFirst())s"
        return String(repeating: " ", count: max(0, 9 - s.count)) + s
    }
}

/// Minimal JSON string quoting for hand-built output (keeps key order stable).
public enum JSONText {
    public static func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}

extension String {
    func padding(toLength n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}
