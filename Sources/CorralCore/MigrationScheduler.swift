/// Decides which queued migrations start now and at what bandwidth (DESIGN §4).
///
/// Pre-copy converges only while a stream's rate r exceeds the VM's dirty rate D, and sends
/// about M/(1−D/r) in all; k streams through a link B get min(b, B/k) each. So the tuned
/// scheduler keeps each stream fast (a full per-stream rate b where it can), admits only as
/// many streams as fill the link minus the reserve, refuses a share that would re-send too
/// much (r < 4·D), gives a VM that needs more than a quarter of a stream a stream of its own
/// with nothing else from its source, orders the queue longest-first, and starts the next
/// migration while the previous one is in its last `setupMs`, hiding the set-up time.
/// With auto-tune off it runs up to `maxPerNode` at once, uncapped (the classic fixed limit).
public enum MigrationScheduler {
    public static func decide(_ state: ClusterState) -> [Command] {
        let s = state.settings.migration
        let queued = state.jobs.values.filter { $0.state == .queued }
        let running = state.jobs.values.filter { $0.state == .running }.sorted { $0.id < $1.id }
        guard !queued.isEmpty || (s.autoTune && !running.isEmpty) else { return [] }
        var counts = Counts(state: state, running: running)
        let tunable = s.autoTune && (queued + running).allSatisfy { linkKnown(state, $0) }
        guard tunable else {
            let limit = s.maxPerNode > 0 ? s.maxPerNode : (s.autoTune ? 2 : Int.max)
            var commands: [Command] = []
            for job in queued.sorted(by: { $0.id < $1.id }) where counts.allows(job, perNode: limit, cluster: s.maxCluster) {
                counts.add(job)
                commands.append(.startMigration(job: job.id, bandwidthMiBps: 0))
            }
            return commands
        }
        return tuned(state, queued: queued, running: running, counts: counts)
    }

    /// Estimated seconds for one VM alone on a full stream; unbounded when it cannot converge.
    public static func soloSeconds(_ state: ClusterState, _ job: MigrationJob) -> Double {
        guard let vm = state.vms[job.vm] else { return 0 }
        let rate = Double(streamCap(state, job) - vm.dirtyRateMiBps)
        return rate > 0 ? Double(vm.spec.memoryMiB) / rate : .infinity
    }

    private static func tuned(_ state: ClusterState, queued: [MigrationJob], running: [MigrationJob], counts: Counts) -> [Command] {
        let s = state.settings.migration
        var counts = counts
        var used = LinkUse()
        var commands: [Command] = []
        var busy: [NodeID: Int] = [:]
        /// Sources sending a high-dirty-rate VM: nothing else leaves them meanwhile.
        var alone: Set<NodeID> = []
        for job in running where !finishingSoon(job, setupMs: s.setupMs) {
            busy[job.source, default: 0] += 1
            if (state.vms[job.vm]?.dirtyRateMiBps ?? 0) * 4 > streamCap(state, job) { alone.insert(job.source) }
            let free = used.free(state, job)
            let share = max(streamCap(state, job) / 4, min(streamCap(state, job), free), 1)
            used.add(job, share)
            if job.bandwidthMiBps == 0 || abs(share - job.bandwidthMiBps) * 10 > job.bandwidthMiBps {
                commands.append(.setMigrationBandwidth(job: job.id, bandwidthMiBps: share))
            }
        }
        used.creditUnderuse(running.filter { !finishingSoon($0, setupMs: s.setupMs) })
        let order = queued.sorted { (soloSeconds(state, $1), $0.id) < (soloSeconds(state, $0), $1.id) }
        for job in order where counts.allows(job, perNode: s.maxPerNode, cluster: s.maxCluster) {
            let dirty = state.vms[job.vm]?.dirtyRateMiBps ?? 0
            let cap = streamCap(state, job)
            if dirty * 10 >= cap * 9 {
                commands.append(.migrationFailed(job: job.id, reason:
                    "cannot converge: dirty rate \(dirty) MiB/s is at or above 90% of the \(cap) MiB/s a stream gets here"))
                continue
            }
            let free = used.free(state, job)
            if dirty * 4 > cap {
                // Needs a whole stream: run it alone on its source, and let nothing start ahead of it.
                guard busy[job.source, default: 0] == 0, free * 20 >= cap * 19 else { break }
                used.add(job, cap)
                counts.add(job)
                busy[job.source, default: 0] += 1
                alone.insert(job.source)
                commands.append(.startMigration(job: job.id, bandwidthMiBps: cap))
                continue
            }
            if alone.contains(job.source) { continue }
            let share = min(cap, free)
            guard share >= max(dirty * 4, cap / 8), share > 0 else { continue }
            used.add(job, share)
            counts.add(job)
            busy[job.source, default: 0] += 1
            commands.append(.startMigration(job: job.id, bandwidthMiBps: share))
        }
        return commands
    }

    /// A job that will be done within the set-up time of the next one frees its share early.
    private static func finishingSoon(_ job: MigrationJob, setupMs: Int) -> Bool {
        guard let p = job.progress, p.rateMiBps > 0 else { return false }
        return p.remainingMiB * 1000 <= p.rateMiBps * setupMs
    }

    /// Tuning needs the sending side's link; a destination whose link is not known yet is
    /// taken not to be the bottleneck (a drain's sender is what the operator shapes and waits on).
    static func linkKnown(_ state: ClusterState, _ job: MigrationJob) -> Bool {
        (state.nodes[job.source]?.linkMiBps ?? 0) > 0
    }

    /// A node's link minus the reserve kept for cluster traffic; unbounded while unknown.
    static func usableLink(_ state: ClusterState, _ node: NodeID) -> Int {
        let link = state.nodes[node]?.linkMiBps ?? 0
        return link > 0 ? max(1, link - state.settings.migration.reserveMiBps) : Int.max / 4
    }

    /// The fastest one stream of this job can go: the per-stream rate, bounded by both links.
    static func streamCap(_ state: ClusterState, _ job: MigrationJob) -> Int {
        let stream = state.settings.migration.streamMiBps
        let link = min(usableLink(state, job.source), usableLink(state, job.destination))
        return stream > 0 ? min(stream, link) : link
    }

    /// Bandwidth already promised on each node's transmit and receive side.
    private struct LinkUse {
        var tx: [NodeID: Int] = [:]
        var rx: [NodeID: Int] = [:]
        func free(_ state: ClusterState, _ job: MigrationJob) -> Int {
            min(usableLink(state, job.source) - tx[job.source, default: 0],
                usableLink(state, job.destination) - rx[job.destination, default: 0])
        }
        mutating func add(_ job: MigrationJob, _ rate: Int) {
            tx[job.source, default: 0] += rate
            rx[job.destination, default: 0] += rate
        }
        /// Streams that measurably send well under their share (a stream slower than its cap:
        /// CPU-bound, or throttled below its setting) leave the rest of the link to another
        /// stream: a sender whose every stream reports progress and which sends under 80% of
        /// what it was promised is charged what it really sends.
        mutating func creditUnderuse(_ running: [MigrationJob]) {
            for source in Set(running.map(\.source)) {
                let streams = running.filter { $0.source == source }
                guard streams.allSatisfy({ ($0.progress?.rateMiBps ?? 0) > 0 }) else { continue }
                let sending = streams.reduce(0) { $0 + $1.progress!.rateMiBps }
                if sending * 5 < tx[source, default: 0] * 4 { tx[source] = sending }
            }
        }
    }

    /// Running migrations per node and in the cluster, against the operator's maximums.
    private struct Counts {
        var perNode: [NodeID: Int] = [:]
        var cluster = 0
        init(state: ClusterState, running: [MigrationJob]) {
            for job in running { add(job) }
        }
        mutating func add(_ job: MigrationJob) {
            perNode[job.source, default: 0] += 1
            perNode[job.destination, default: 0] += 1
            cluster += 1
        }
        func allows(_ job: MigrationJob, perNode limit: Int, cluster clusterLimit: Int) -> Bool {
            (limit <= 0 || (perNode[job.source, default: 0] < limit && perNode[job.destination, default: 0] < limit))
                && (clusterLimit <= 0 || cluster < clusterLimit)
        }
    }
}
