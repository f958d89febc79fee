import CorralCore

/// A cluster to simulate and a timed script of faults and operator requests.
public struct Scenario: Sendable {
    public struct NodeConfig: Sendable, Equatable {
        public var name: String
        public var capacity: Capacity
        /// Link bandwidth in MiB/s available to migrations and cluster traffic.
        public var linkMiBps: Int
        public init(name: String, capacity: Capacity, linkMiBps: Int) {
            self.name = name
            self.capacity = capacity
            self.linkMiBps = linkMiBps
        }
    }

    public struct VMConfig: Sendable, Equatable {
        public var spec: VMSpec
        /// The guest's true page dirty rate (MiB/s); the core learns it from migration stats.
        public var dirtyRateMiBps: Int
        public var running: Bool
        public init(spec: VMSpec, dirtyRateMiBps: Int = 0, running: Bool = true) {
            self.spec = spec
            self.dirtyRateMiBps = dirtyRateMiBps
            self.running = running
        }
    }

    /// Physical timings of the simulated world (all in ms unless named otherwise).
    public struct Timing: Sendable, Equatable {
        /// From a fault to Corosync's new membership (token timeout plus consensus).
        public var detectionMs: Int64 = 1_100
        public var tickMs: Int64 = 100
        public var messageLatencyMs: Int64 = 1
        public var vmStartMs: Int64 = 300
        public var vmStopMs: Int64 = 50
        /// The fastest one TCP stream goes (MiB/s), whatever the link.
        public var streamMiBps: Int = 1_000_000
        /// A migration whose peer is unreachable fails after this (libvirt keepalive).
        public var keepaliveMs: Int64 = 5_000
        public var migrationStepMs: Int64 = 50
        public var progressEveryMs: Int64 = 250
        /// Stop-copy starts once the rest can be sent in this long.
        public var downtimeLimitMs: Int64 = 300
        public var maxRounds = 30
        /// How long the run goes on after the last scripted event.
        public var settleMs: Int64 = 30_000
        /// 0: votequorum's notification reaches every node with the CPG membership change, just
        /// before it. Above 0: at each node, either may come first, votequorum's up to this late.
        public var quorumLagMs: Int64 = 0
        /// How long the storage of a simulated node takes for one disk operation.
        public var diskOperationMs: Int64 = 1_000
        public init() {}
    }

    public var name: String
    public var nodes: [NodeConfig]
    public var vms: [VMConfig]
    public var settings: ClusterSettings
    public var timing: Timing
    public var events: [ScenarioEvent]
    /// Simulated time the run covers; at least the last event plus `settleMs`.
    public var durationMs: Int64

    public init(name: String, nodes: [NodeConfig], vms: [VMConfig], settings: ClusterSettings = .init(),
                timing: Timing = .init(), events: [ScenarioEvent] = [], durationMs: Int64? = nil) {
        self.name = name
        self.nodes = nodes
        self.vms = vms
        var settings = settings
        settings.expectedVotes = nodes.count
        self.settings = settings
        self.timing = timing
        self.events = events.sorted { $0.atMs < $1.atMs }
        self.durationMs = durationMs ?? ((self.events.last?.atMs ?? 0) + timing.settleMs)
    }
}

public struct ScenarioEvent: Sendable, Equatable {
    public var atMs: Int64
    public var action: Action
    public init(atMs: Int64, _ action: Action) {
        self.atMs = atMs
        self.action = action
    }

    public enum Action: Sendable, Equatable {
        /// Power loss: the node and all its VMs stop at once.
        case crash(String)
        case powerOn(String)
        /// Split the network into these groups; nodes not listed stay together.
        case partition([[String]])
        case heal
        /// The whole node freezes (SIGSTOP); its watchdog resets it when its lease runs out.
        case hang(String)
        case resume(String)
        case crashVM(String)
        case request(OperatorRequest, via: String?)
        /// Only the agent freezes (SIGSTOP of corrald): Corosync keeps the node in the
        /// membership and queues its deliveries, its guests keep running; `resume` thaws it.
        case hangAgent(String)
        /// Shell faults until `untilMs`: each multicast of the node fails (reported back to
        /// its core) with this chance in percent.
        case multicastFailures(String, percent: Int, untilMs: Int64)
        /// Every VM stop (destroy) on the node fails until `untilMs`.
        case stopFailures(String, untilMs: Int64)
        /// The node's watchdog refuses to be armed.
        case watchdogFails(String)
        /// The next migration from this node that switches over crashes the node at that instant,
        /// before its agent can report the switchover.
        case crashAfterSwitchover(String)
        /// From now on fence agents take this long to answer (and only then power the node off).
        case fenceAgentDelay(Int64)
        /// The next multicast from the node reaches one member as bytes that do not decode.
        case garble(String)
    }
}
