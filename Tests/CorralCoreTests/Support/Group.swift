import CorralCore
import Testing

/// Several `CorralNode`s joined by a toy totally ordered group: every broadcast is delivered
/// to every member of the sender's view, all in one order (CPG's agreed ordering), and what
/// the deliveries broadcast in turn is delivered after. No hypervisors: the other directives
/// are only recorded, so tests can look at what each node asked its shell to do.
struct Group {
    var nodes: [NodeID: CorralNode] = [:]
    var now: Millis = 0
    /// Every directive each node produced except broadcasts, in order.
    var directives: [NodeID: [Directive]] = [:]
    private var view: [NodeID: [NodeID]] = [:]
    private var queue: [Envelope] = []
    /// Agents frozen (SIGSTOP of corrald while Corosync runs): their inputs wait here.
    private var frozen: [NodeID: [Input]] = [:]
    /// Nodes whose next multicast fails in the shell (reported back as `broadcastFailed`).
    var failNextBroadcast: Set<NodeID> = []

    /// One node per entry, each starting from its own copy of a state (they may differ).
    init(_ states: [NodeID: ClusterState]) {
        for (id, state) in states {
            let node = state.nodes[id]!
            nodes[id] = CorralNode(spec: NodeSpec(id: id, name: node.name, capacity: node.capacity, linkMiBps: node.linkMiBps), state: state)
        }
    }

    /// Every node of `state` runs, all starting from the same state.
    init(_ state: ClusterState) {
        self.init(Dictionary(uniqueKeysWithValues: state.nodes.keys.map { ($0, state) }))
    }

    var ids: [NodeID] { nodes.keys.sorted() }
    /// Broadcasts waiting for delivery.
    var undelivered: Int { queue.count }
    var digests: [String] { ids.map { nodes[$0]!.state.digest } }

    /// A Corosync configuration change seen by `members`, then everything it sets off.
    /// `notYetQuorate`: members whose shell has not heard votequorum's verdict yet.
    mutating func membership(_ members: [NodeID], quorate: Bool, agentOnly: [NodeID] = [], notYetQuorate: Set<NodeID> = [],
                             sourceLocation: SourceLocation = #_sourceLocation) {
        for m in members { view[m] = members }
        for m in members {
            feed(m, .membership(members: members, quorate: quorate && !notYetQuorate.contains(m), agentOnly: agentOnly))
        }
        settle(sourceLocation: sourceLocation)
    }

    /// Feeds one input to one node and queues what it broadcasts; returns its other directives.
    @discardableResult
    mutating func feed(_ node: NodeID, _ input: Input) -> [Directive] {
        if frozen[node] != nil {
            frozen[node]!.append(input)
            return []
        }
        var rest: [Directive] = []
        var failed: [UInt64] = []
        for d in nodes[node]!.step(input, now: now) {
            if case let .broadcast(e) = d {
                if failNextBroadcast.remove(node) != nil { failed.append(e.sequence) } else { queue.append(e) }
            } else {
                rest.append(d)
            }
        }
        directives[node, default: []] += rest
        for sequence in failed { rest += feed(node, .broadcastFailed(sequence: sequence, reason: "test: multicast failed")) }
        return rest
    }

    /// Freezes a node's agent: it stays a member, its inputs queue up until `thaw`.
    mutating func freeze(_ node: NodeID) { frozen[node] = frozen[node] ?? [] }

    /// Runs a frozen agent again: it works through what queued up, then everything settles.
    mutating func thaw(_ node: NodeID) {
        let backlog = frozen.removeValue(forKey: node) ?? []
        for input in backlog { feed(node, input) }
        settle()
    }

    /// The log lines a node has produced.
    func logs(_ node: NodeID) -> [String] {
        (directives[node] ?? []).compactMap { if case let .log(text) = $0 { text } else { nil } }
    }

    /// Delivers queued messages in order until the group is quiet; bounded so a chatty bug
    /// fails the test instead of hanging it.
    mutating func settle(maxDeliveries: Int = 10_000, sourceLocation: SourceLocation = #_sourceLocation) {
        var delivered = 0
        while !queue.isEmpty {
            let envelope = queue.removeFirst()
            for member in view[envelope.origin] ?? [] { feed(member, .delivered(envelope)) }
            delivered += 1
            if delivered > maxDeliveries {
                Issue.record("group still busy after \(maxDeliveries) deliveries", sourceLocation: sourceLocation)
                queue = []
            }
        }
    }

    /// Lets time pass in ticks, as the agent does, delivering after each.
    mutating func advance(by ms: Millis, tick: Millis = 100) {
        let end = now + ms
        while now < end {
            now = min(end, now + tick)
            for id in ids where view[id] != nil && frozen[id] == nil { feed(id, .tick) }
            settle()
        }
    }

    /// The `stopVM` directives a node has produced, as VM names.
    func stops(_ node: NodeID) -> [String] {
        (directives[node] ?? []).compactMap { if case let .stopVM(vm, _) = $0 { vm } else { nil } }
    }

    /// The `startVM` directives a node has produced, as VM names.
    func starts(_ node: NodeID) -> [String] {
        (directives[node] ?? []).compactMap { if case let .startVM(spec, _) = $0 { spec.name } else { nil } }
    }

    /// The replies a node has sent for requests.
    func replies(_ node: NodeID) -> [UInt64: RequestReply] {
        var result: [UInt64: RequestReply] = [:]
        for d in directives[node] ?? [] { if case let .reply(id, reply) = d { result[id] = reply } }
        return result
    }
}
