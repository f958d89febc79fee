import CorralCore

/// Live migrations in flight and the links they share: max-min fair shares under each
/// stream's cap (libvirt's bandwidth setting, and the fastest one stream can go), and the
/// pre-copy model: round 1 sends all memory, each later round re-sends what the guest dirtied
/// during the previous one, and once a round fits in the downtime limit the guest pauses for
/// a last stop-copy. A migration still iterating after `maxRounds` fails: it cannot converge.
struct MigrationNetwork {
    struct Flight {
        let job: Int
        let vm: String
        let source: NodeID
        let destination: NodeID
        let memoryMiB: Double
        let dirtyMiBps: Double
        var capMiBps: Int
        var setupLeftMs: Int64
        var roundLeftMiB: Double
        var dirtiedMiB = 0.0
        var rounds = 1
        var stopCopy = false
        var downtimeMs = 0.0
        var rateMiBps = 0.0
        var unreachableMs: Int64 = 0
        var sinceProgressMs: Int64 = 0
        var sentMiB = 0.0
    }

    enum Outcome {
        case progress(Flight)
        case completed(Flight)
        case failed(Flight, String)
    }

    private(set) var flights: [Int: Flight] = [:]
    var isEmpty: Bool { flights.isEmpty }

    mutating func start(job: Int, vm: String, source: NodeID, destination: NodeID, memoryMiB: Int,
                        dirtyMiBps: Int, capMiBps: Int, setupMs: Int64) {
        flights[job] = Flight(job: job, vm: vm, source: source, destination: destination, memoryMiB: Double(memoryMiB),
                              dirtyMiBps: Double(dirtyMiBps), capMiBps: capMiBps, setupLeftMs: setupMs,
                              roundLeftMiB: Double(memoryMiB))
    }

    mutating func setCap(job: Int, _ cap: Int) { flights[job]?.capMiBps = cap }
    @discardableResult mutating func remove(job: Int) -> Flight? { flights.removeValue(forKey: job) }

    /// Removes every flight touching `node` (it crashed) and returns them.
    mutating func removeAll(touching node: NodeID) -> [Flight] {
        let gone = flights.values.filter { $0.source == node || $0.destination == node }.sorted { $0.job < $1.job }
        for f in gone { flights[f.job] = nil }
        return gone
    }

    /// Advances every flight by `dt` ms and reports progress, completions and failures.
    mutating func step(dt: Int64, timing: Scenario.Timing, link: (NodeID) -> Double,
                       reachable: (NodeID, NodeID) -> Bool) -> [Outcome] {
        let ids = flights.keys.sorted()
        let transferring = ids.filter { flights[$0]!.setupLeftMs <= 0 && reachable(flights[$0]!.source, flights[$0]!.destination) }
        let rates = fairShares(transferring, timing: timing, link: link)
        var outcomes: [Outcome] = []
        let seconds = Double(dt) / 1000
        for id in ids {
            var f = flights[id]!
            guard reachable(f.source, f.destination) else {
                f.unreachableMs += dt
                f.rateMiBps = 0
                flights[id] = f
                if f.unreachableMs >= timing.keepaliveMs {
                    flights[id] = nil
                    outcomes.append(.failed(f, "peer unreachable for \(timing.keepaliveMs) ms (keepalive)"))
                }
                continue
            }
            f.unreachableMs = 0
            if f.setupLeftMs > 0 {
                f.setupLeftMs -= dt
                flights[id] = f
                continue
            }
            f.rateMiBps = rates[id] ?? 0
            var budget = f.rateMiBps * seconds
            f.sentMiB += budget
            if !f.stopCopy { f.dirtiedMiB = min(f.memoryMiB, f.dirtiedMiB + f.dirtyMiBps * seconds) }
            var failure: String?
            while budget > 0 {
                let sent = min(budget, f.roundLeftMiB)
                budget -= sent
                f.roundLeftMiB -= sent
                if f.stopCopy { f.downtimeMs += sent / max(f.rateMiBps, 1e-9) * 1000 }
                guard f.roundLeftMiB <= 1e-9 else { break }
                if f.stopCopy { break }
                // End of a round: what was dirtied meanwhile is the next round.
                f.rounds += 1
                let next = f.dirtiedMiB
                f.dirtiedMiB = 0
                f.roundLeftMiB = next
                if next <= f.rateMiBps * Double(timing.downtimeLimitMs) / 1000 {
                    f.stopCopy = true
                    if next <= 1e-9 { break }
                } else if f.rounds > timing.maxRounds {
                    failure = "did not converge after \(timing.maxRounds) rounds (dirty \(Int(f.dirtyMiBps)) MiB/s, rate \(Int(f.rateMiBps)) MiB/s)"
                    break
                }
            }
            if let failure {
                flights[id] = nil
                outcomes.append(.failed(f, failure))
            } else if f.stopCopy && f.roundLeftMiB <= 1e-9 {
                flights[id] = nil
                outcomes.append(.completed(f))
            } else {
                f.sinceProgressMs += dt
                if f.sinceProgressMs >= timing.progressEveryMs {
                    f.sinceProgressMs = 0
                    outcomes.append(.progress(f))
                }
                flights[id] = f
            }
        }
        return outcomes
    }

    /// Progressive filling: raise every unfrozen stream equally until a link or its cap is full.
    private func fairShares(_ ids: [Int], timing: Scenario.Timing, link: (NodeID) -> Double) -> [Int: Double] {
        var rate: [Int: Double] = [:]
        var cap: [Int: Double] = [:]
        for id in ids {
            let f = flights[id]!
            rate[id] = 0
            cap[id] = min(Double(timing.streamMiBps), f.capMiBps > 0 ? Double(f.capMiBps) : .infinity)
        }
        var active = ids
        while !active.isEmpty {
            var txUse: [NodeID: (used: Double, users: Int)] = [:]
            var rxUse: [NodeID: (used: Double, users: Int)] = [:]
            for id in ids {
                let f = flights[id]!
                let isActive = active.contains(id)
                txUse[f.source, default: (0, 0)].used += rate[id]!
                rxUse[f.destination, default: (0, 0)].used += rate[id]!
                if isActive {
                    txUse[f.source]!.users += 1
                    rxUse[f.destination]!.users += 1
                }
            }
            var increment = Double.infinity
            for id in active {
                let f = flights[id]!
                increment = min(increment, cap[id]! - rate[id]!)
                let tx = txUse[f.source]!, rx = rxUse[f.destination]!
                increment = min(increment, (link(f.source) - tx.used) / Double(tx.users))
                increment = min(increment, (link(f.destination) - rx.used) / Double(rx.users))
            }
            increment = max(0, increment)
            for id in active { rate[id]! += increment }
            // Freeze streams at their cap or on a full link.
            var txLeft: [NodeID: Double] = [:]
            var rxLeft: [NodeID: Double] = [:]
            for id in ids {
                let f = flights[id]!
                txLeft[f.source, default: link(f.source)] -= rate[id]!
                rxLeft[f.destination, default: link(f.destination)] -= rate[id]!
            }
            let before = active.count
            active.removeAll { id in
                let f = flights[id]!
                return rate[id]! >= cap[id]! - 1e-9 || txLeft[f.source]! <= 1e-9 || rxLeft[f.destination]! <= 1e-9
            }
            if active.count == before { break }
        }
        return rate
    }
}
