import CorralSimulator

/// The kinds of fault the chaos campaign injects into a real cluster (issue 5 §4).
enum ChaosFaultKind: String, CaseIterable, Sendable {
    /// `local-cluster kill I`: every process of the node dies at once (corosync, corrald,
    /// libvirtd, virtlockd, its QEMU guests). Stays down until the round heals.
    case crash
    /// `local-cluster partition I`: the node's link goes down; it is alone. Healed at round end.
    case partition
    /// A real 2/3 split: bridge filter rules drop frames between the two sides, so the two
    /// minority nodes still talk to each other (a two-node non-quorate membership). Healed at round end.
    case split
    /// `local-cluster flap I MS`: link down for 1–4 s, then up again by itself.
    case flap
    /// SIGSTOP corrald, SIGCONT after 1.5–4 s: shorter than the 5 s self-fence lease.
    case pauseShort = "pause-short"
    /// SIGSTOP corrald, SIGCONT after 6–10 s: longer than the lease, so the node's test
    /// watchdog should kill the node before the SIGCONT.
    case pauseLong = "pause-long"
    /// SIGKILL corosync; start it again after 1–6 s (corrald stays and reconnects).
    case corosyncRestart = "corosync-restart"

    /// Relative weights of the draw.
    var weight: UInt64 {
        switch self {
        case .crash, .partition, .flap: 4
        case .split, .pauseLong, .corosyncRestart: 3
        case .pauseShort: 2
        }
    }
}

/// One fault of a round: injected `delayMs` after the previous one (or the round's start).
struct ChaosFault: Sendable {
    var kind: ChaosFaultKind
    /// The node hit; for a split the minority side.
    var nodes: [Int]
    var delayMs: Int
    /// How long a self-repairing fault lasts (flap, pause, corosync downtime); 0 otherwise.
    var durationMs: Int

    var label: String {
        let who = kind == .split ? "{\(nodes.map { "node\($0)" }.joined(separator: ","))}|rest" : "node\(nodes[0])"
        return durationMs > 0 ? "\(kind.rawValue) \(who) \(durationMs) ms" : "\(kind.rawValue) \(who)"
    }
}

/// An operator request issued while the faults are in place (a refusal is a fine outcome).
struct ChaosOperation: Sendable {
    enum Kind: Sendable {
        case drain(node: Int)
        case move(vm: String, to: Int?)
    }
    var kind: Kind
    /// The node whose corrald receives the request.
    var via: Int
    /// Issued after fault number `afterFault` (0-based) was injected, `delayMs` later.
    var afterFault: Int
    var delayMs: Int

    var label: String {
        switch kind {
        case let .drain(node): "drain node\(node) via node\(via)"
        case let .move(vm, to): "move \(vm)\(to.map { " to node\($0)" } ?? "") via node\(via)"
        }
    }
}

struct ChaosRoundPlan: Sendable {
    var index: Int
    var faults: [ChaosFault]
    var operations: [ChaosOperation]
    /// How long the faults stay in place after the last one before everything is healed.
    var holdMs: Int
    /// Whether drained nodes are resumed with failback at heal time.
    var failback: Bool
}

/// The whole campaign's faults, drawn up front from the seed alone: the same seed, node count
/// and guest names give the same sequence, whatever the cluster does meanwhile.
enum ChaosPlanner {
    static func plan(seed: UInt64, rounds: Int, nodes: Int, guests: [String]) -> [ChaosRoundPlan] {
        var rng = SplitMix64(seed: seed)
        func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(1, n))) }
        func between(_ low: Int, _ high: Int) -> Int { low + below(high - low + 1) }
        func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        let minoritySize = nodes / 2
        return (1...max(1, rounds)).map { round in
            var used = Set<Int>()
            var faults: [ChaosFault] = []
            for _ in 0..<between(1, 3) {
                let free = (1...nodes).filter { !used.contains($0) }
                guard !free.isEmpty else { break }
                var kinds = ChaosFaultKind.allCases
                if nodes < 4 || free.count < minoritySize || minoritySize < 2 { kinds.removeAll { $0 == .split } }
                let total = kinds.reduce(0) { $0 + $1.weight }
                var draw = rng.next() % total
                let kind = kinds.first { k in
                    if draw < k.weight { return true }
                    draw -= k.weight
                    return false
                }!
                var targets: [Int]
                if kind == .split {
                    var pool = free
                    targets = []
                    for _ in 0..<minoritySize { targets.append(pool.remove(at: below(pool.count))) }
                    targets.sort()
                } else {
                    targets = [pick(free)]
                }
                used.formUnion(targets)
                let duration: Int = switch kind {
                case .flap: between(1000, 4000)
                case .pauseShort: between(1500, 4000)
                case .pauseLong: between(6000, 10000)
                case .corosyncRestart: between(1000, 6000)
                case .crash, .partition, .split: 0
                }
                faults.append(ChaosFault(kind: kind, nodes: targets, delayMs: faults.isEmpty ? 0 : between(0, 3000), durationMs: duration))
            }
            var operations: [ChaosOperation] = []
            for _ in 0..<between(0, 2) {
                // Mostly through a node no fault of this round touches; sometimes through any node
                // (a minority or hung node must refuse or time out, never act).
                let untouched = (1...nodes).filter { !used.contains($0) }
                let via = below(10) < 7 && !untouched.isEmpty ? pick(untouched) : between(1, nodes)
                let kind: ChaosOperation.Kind
                if below(10) < 6 {
                    kind = .drain(node: between(1, nodes))
                } else {
                    let to: Int? = below(2) == 0 ? nil : between(1, nodes)
                    kind = .move(vm: pick(guests), to: to)
                }
                operations.append(ChaosOperation(kind: kind, via: via, afterFault: below(faults.count), delayMs: between(300, 2500)))
            }
            return ChaosRoundPlan(index: round, faults: faults, operations: operations,
                                  holdMs: between(10_000, 20_000), failback: below(2) == 0)
        }
    }
}
