/// A cluster-aware patching run: every node, one after another, is checked, drained live,
/// patched by the operator's hook (which may reboot it) and resumed, with no VM stopped.
/// It lives in the replicated state, so whichever node coordinates carries it on: the node
/// that started it, or the node being patched, may die or reboot without ending the run.
public struct PatchRun: Codable, Sendable, Equatable {
    public var id: Int
    public var options: PatchOptions
    /// One entry per node, in the order the run patches them.
    public var nodes: [PatchNodeProgress]
    public var state: PatchRunState
    /// Why the run ended, when it did (finished, stopped at max-failed, aborted).
    public var outcome: String

    public init(id: Int, options: PatchOptions, order: [NodeID]) {
        self.id = id
        self.options = options
        self.nodes = order.map { PatchNodeProgress(node: $0) }
        self.state = .running
        self.outcome = ""
    }

    /// The node being patched now (from its pre hook to its post hook), if any: one at a time.
    public var working: PatchNodeProgress? { nodes.first { $0.step.isActive && $0.step != .resuming } }
    /// The node being patched, else one whose failbacks still run (they overlap the next node).
    public var current: PatchNodeProgress? { working ?? nodes.first { $0.step == .resuming } }
    public var failedCount: Int { nodes.filter { $0.step == .failed }.count }
    /// `--max-failed`, or ⌈n/3⌉ − 1 of the nodes in the run.
    public var maxFailed: Int { options.maxFailed ?? PatchOptions.defaultMaxFailed(nodes: nodes.count) }

    func index(of node: NodeID) -> Int? { nodes.firstIndex { $0.node == node } }
}

public enum PatchRunState: String, Codable, Sendable, Equatable {
    case running, finished, stopped, aborted
}

/// What the operator asked for; durations in ms.
public struct PatchOptions: Codable, Sendable, Equatable {
    /// Run on the node being patched, after its drain; may reboot it.
    public var hook: String
    public var pre: String?
    public var post: String?
    /// The run stops once more nodes than this have failed; nil: ⌈n/3⌉ − 1 of its n nodes.
    public var maxFailed: Int?
    /// Attempts per node beyond the first.
    public var retries: Int
    /// How long a hook may run, and how long a node may take to come back after it left.
    public var rebootTimeoutMs: Int
    public var failback: Bool
    public var requireAllOnline: Bool
    /// Anti-affinity class → how many distinct nodes must keep hosting its running VMs while a
    /// node is out (checked against the drain plan before each node).
    public var keepRunning: [String: Int]

    public init(hook: String, pre: String? = nil, post: String? = nil, maxFailed: Int? = nil, retries: Int = 3,
                rebootTimeoutMs: Int = 15 * 60_000, failback: Bool = true, requireAllOnline: Bool = false,
                keepRunning: [String: Int] = [:]) {
        self.hook = hook
        self.pre = pre
        self.post = post
        self.maxFailed = maxFailed
        self.retries = retries
        self.rebootTimeoutMs = rebootTimeoutMs
        self.failback = failback
        self.requireAllOnline = requireAllOnline
        self.keepRunning = keepRunning
    }

    /// ⌈n/3⌉ − 1: a third of the cluster failing its patch stops the run.
    public static func defaultMaxFailed(nodes: Int) -> Int { max(0, (nodes + 2) / 3 - 1) }
}

/// Where one node is in the run. `waiting` → `pre` → `draining` → `hook` → (`rejoining`) →
/// `post` → `resuming` → `done`; a failed attempt goes back to `pre` (or `draining` without a
/// pre hook) until the retries are spent, then `failed`. `skipped`: not online when its turn came.
/// `cancelled`: the run ended before its turn.
public enum PatchStep: String, Codable, Sendable, Equatable {
    case waiting, pre, draining, hook, rejoining, post, resuming, done, failed, skipped, cancelled

    public var isActive: Bool { [.pre, .draining, .hook, .rejoining, .post, .resuming].contains(self) }
    public var isFinal: Bool { [.done, .failed, .skipped, .cancelled].contains(self) }
    /// The hook phase this step runs on the node, if any.
    public var phase: PatchPhase? {
        switch self {
        case .pre: .pre
        case .hook: .hook
        case .post: .post
        default: nil
        }
    }
}

public enum PatchPhase: String, Codable, Sendable, Equatable {
    case pre, hook, post
}

/// What a hook command did, as the node that ran it saw it.
public struct PatchHookResult: Codable, Sendable, Equatable {
    /// Exit status; 124 after the timeout (as `timeout(1)` says); -1 when the result was lost.
    public var status: Int
    /// The last lines of its output (stdout and stderr), at most `tailLimit` characters.
    public var outputTail: String
    public var durationMs: Int

    public static let tailLimit = 2_000

    public init(status: Int, outputTail: String, durationMs: Int) {
        self.status = status
        self.outputTail = String(outputTail.suffix(Self.tailLimit))
        self.durationMs = durationMs
    }
}

/// One hook run of one attempt, kept for the report.
public struct PatchHookRecord: Codable, Sendable, Equatable {
    public var phase: PatchPhase
    public var attempt: Int
    public var result: PatchHookResult
}

/// A VM the node's drain moved, with the downtime libvirt measured for it.
public struct PatchMove: Codable, Sendable, Equatable {
    public var vm: String
    public var to: NodeID
    public var downtimeMs: Int
}

/// A step began at `at` (the coordinator's monotonic clock, see Docs/patching.md).
public struct PatchMark: Codable, Sendable, Equatable {
    public var step: PatchStep
    public var attempt: Int
    public var at: Millis
}

public struct PatchNodeProgress: Codable, Sendable, Equatable {
    public var node: NodeID
    public var step: PatchStep
    /// 1 for the first attempt; 0 before the node's turn.
    public var attempt: Int
    /// The current phase's hook has been started on the node (its result may be lost if the
    /// node reboots; the node must then come back rather than run the hook again).
    public var hookStarted: Bool
    /// Why the node failed, was skipped, or why its last attempt failed.
    public var reason: String
    public var hooks: [PatchHookRecord]
    public var moved: [PatchMove]
    /// The VMs its failback brought back, with their downtime.
    public var returned: [PatchMove]
    /// Jobs numbered from here on were queued by its resume (its failbacks).
    public var resumeFirstJob: Int
    public var timeline: [PatchMark]

    public init(node: NodeID) {
        self.node = node
        self.step = .waiting
        self.attempt = 0
        self.hookStarted = false
        self.reason = ""
        self.hooks = []
        self.moved = []
        self.returned = []
        self.resumeFirstJob = 0
        self.timeline = []
    }

    /// The result of the current phase's hook in the current attempt, once reported.
    public var currentResult: PatchHookResult? {
        guard let phase = step.phase else { return nil }
        return hooks.last { $0.phase == phase && $0.attempt == attempt }?.result
    }
}
