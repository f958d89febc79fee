import CorralCore
import Dispatch
import Foundation
import LibvirtClient
import Synchronization

/// `Hypervisor` on a libvirt daemon, honouring the event contract documented on `Hypervisor`.
///
/// Guests are transient (`createXML` from `DomainXML`): a node that crashes keeps no definition
/// that could later start a second copy. Everything about one guest — our operations on it and
/// libvirt's events for it — runs in order on that guest's own serial queue, so its reports come
/// out in the order things happened; different guests proceed in parallel. libvirt calls block
/// (a migration for seconds, a dead peer for ~30 s), so they run on those queues' threads, never
/// on the caller's. Bandwidth changes and aborts go through a second queue per guest, because
/// they must reach a migration that is still blocking the first.
public final class LibvirtHypervisor: Hypervisor {
    private let uri: String
    private let migrationURI: @Sendable (MigrationTarget) -> String
    /// Replaced by a fresh connection when the daemon comes back after the old one died.
    private let connection: Mutex<LibvirtConnection>
    private let state = Mutex(State())
    /// Tests' stand-in for the calls that decide whether a guest is here (nil: the connection).
    private let lookupOverride: (any GuestLookup)?

    private struct State {
        var watcher: (@Sendable (HypervisorEvent) -> Void)?
        var queues: [String: GuestQueues] = [:]
        /// What we last learned or reported about each guest; nil for guests never seen.
        var guests: [String: Presence] = [:]
        var migrations: [Int: OutgoingMigration] = [:]
    }

    /// Where a guest stands as far as our reports go.
    private enum Presence {
        /// Reported running here (started here, arrived, or listed by `inventory`).
        case running
        /// An incoming migration created it here; it runs here only after switchover.
        case arriving
        /// Created paused for a failover (`stage`); it has never run and runs only if started.
        case staged
        /// Not here: stopped by us, failed to start, reported stopped, or left by migration.
        case gone
        /// A start failed and libvirt could not be asked whether the guest runs anyway:
        /// nothing is claimed until a recheck can tell.
        case unknown
    }

    private struct GuestQueues {
        /// Operations and events, one at a time.
        let work: DispatchQueue
        /// Bandwidth changes and aborts for the migration running on `work`.
        let control: DispatchQueue
    }

    /// Connects to the daemon at `uri` (blocking) and subscribes to its guests' events.
    /// `migrationURI` names the destination daemon as the source daemon reaches it.
    public convenience init(uri: String = "qemu:///system",
                            migrationURI: @escaping @Sendable (MigrationTarget) -> String = { "qemu+tcp://\($0.address)/system" }) throws(LibvirtError) {
        try self.init(uri: uri, migrationURI: migrationURI, lookup: nil)
    }

    /// `lookup` replaces the connection for looking guests up, destroying and undefining them.
    init(uri: String, migrationURI: @escaping @Sendable (MigrationTarget) -> String = { "qemu+tcp://\($0.address)/system" },
         lookup: (any GuestLookup)?, retryPause: Duration = .seconds(1)) throws(LibvirtError) {
        self.uri = uri
        self.migrationURI = migrationURI
        self.lookupOverride = lookup
        self.retryPause = retryPause
        let connection = try LibvirtConnection(uri: uri)
        self.connection = Mutex(connection)
        try subscribe(to: connection)
    }

    private var libvirt: LibvirtConnection { connection.withLock { $0 } }
    private var guests: any GuestLookup { lookupOverride ?? libvirt }
    /// Between tries of a stop, and before a recheck after libvirt did not answer.
    private let retryPause: Duration

    // MARK: Hypervisor

    public func watch(report: @escaping @Sendable (HypervisorEvent) -> Void) {
        state.withLock { $0.watcher = report }
    }

    /// Starts a transient guest, or resumes it when it was staged here. `leaseTokens` are not
    /// libvirt's business: the agent holds the disk leases before it asks for a start.
    public func start(_ spec: VMSpec, leaseTokens: [UInt64], report: @escaping @Sendable (HypervisorEvent) -> Void) {
        let vm = spec.name
        let xml = DomainXML.xml(for: spec)
        onGuestQueue(vm) {
            let libvirt = self.libvirt
            if self.presence(vm) == .staged {
                self.record(vm, .gone)
                do throws(LibvirtError) {
                    try libvirt.resume(vm)
                    self.record(vm, .running)
                    report(.running(vm))
                    // The mark only tells a later agent that a paused guest never ran.
                    try? libvirt.removeMetadata(of: vm, uri: DomainXML.stagedNamespace)
                    return
                } catch {
                    // Not resumable (gone, or its disk lock refused): start it afresh.
                    try? self.remove(vm)
                }
            }
            let outcome: HypervisorEvent
            do throws(LibvirtError) {
                try libvirt.createTransient(xml: xml)
                outcome = .running(vm)
            } catch {
                // A repeated start finds the guest already running here: that is what was asked.
                // If libvirt cannot say, the guest may run: neither a start nor a failure is
                // claimed until a recheck can tell.
                do throws(LibvirtError) {
                    let running = try self.guests.domain(named: vm)?.state == .running
                    outcome = running ? .running(vm) : .startFailed(vm, reason: error.message)
                } catch let query {
                    self.record(vm, .unknown)
                    report(.queryFailed(vm, reason: "the start failed (\(error.message)) and whether it runs anyway is unknown: \(query.message)"))
                    return self.recheckLater(vm, attempt: 1)
                }
            }
            self.record(vm, outcome == .running(vm) ? .running : .gone)
            report(outcome)
        }
    }

    /// Creates the guest paused and marked as staged. A guest this node already has is left alone.
    public func stage(_ spec: VMSpec) {
        let vm = spec.name
        let xml = DomainXML.xml(for: spec, staged: true)
        onGuestQueue(vm) {
            guard [nil, .gone].contains(self.presence(vm)) else { return }
            do throws(LibvirtError) {
                try self.libvirt.createTransient(xml: xml, paused: true)
                self.record(vm, .staged)
            } catch {}
        }
    }

    /// Destroys the guest if it is still only staged.
    public func unstage(_ vm: String) {
        onGuestQueue(vm) {
            guard self.presence(vm) == .staged else { return }
            self.record(vm, .gone)
            try? self.remove(vm)
        }
    }

    /// Destroys the guest and removes any persistent definition. If libvirt cannot destroy it
    /// after a few tries the stop fails (`.stopFailed`): the guest may still run, and saying it
    /// stopped could let it run twice. Only a stop libvirt confirmed is reported as a stop.
    public func stop(_ vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        onGuestQueue(vm) {
            for attempt in 1...Self.stopAttempts {
                do throws(LibvirtError) {
                    try self.remove(vm)
                    self.record(vm, .gone)
                    report(.stopped(vm, crashed: false))
                    return
                } catch {
                    guard attempt < Self.stopAttempts else {
                        return report(.stopFailed(vm, reason: "\(Self.stopAttempts) tries: \(error.message)"))
                    }
                    Thread.sleep(forTimeInterval: self.retryPauseSeconds)
                }
            }
        }
    }

    private var retryPauseSeconds: TimeInterval {
        let (seconds, attoseconds) = retryPause.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }

    private static let stopAttempts = 3

    /// Live, peer-to-peer migration. Transient guests need no persistence flags; disks on a
    /// shared directory need `unsafe`, since libvirt does not recognise it as shared storage.
    public func migrate(_ job: MigrationJob, _ spec: VMSpec, to destination: MigrationTarget,
                        report: @escaping @Sendable (HypervisorEvent) -> Void) {
        let migration = OutgoingMigration(job: job.id, vm: spec.name, bandwidthMiBps: job.bandwidthMiBps)
        state.withLock { $0.migrations[job.id] = migration }
        let destinationURI = migrationURI(destination)
        let flags: MigrationFlags = spec.disks.isEmpty ? [.live, .peerToPeer] : [.live, .peerToPeer, .unsafe]
        onGuestQueue(spec.name) {
            self.run(migration, to: destinationURI, flags: flags, report: report)
            self.state.withLock { $0.migrations[job.id] = nil }
        }
    }

    /// Nothing to prepare for a diskless guest or disks on a shared directory; the guest is
    /// reported `.running` through `watch` once it runs here.
    public func prepareIncoming(_ job: MigrationJob, _ spec: VMSpec, report: @escaping @Sendable (HypervisorEvent) -> Void) {}

    /// 0 lifts the cap.
    public func setMigrationBandwidth(job: Int, vm: String, MiBps: Int) {
        guard let migration = state.withLock({ $0.migrations[job] }), migration.changeBandwidth(to: MiBps) else { return }
        onControlQueue(vm) {
            try? self.libvirt.setMaxMigrationSpeed(vm, MiBps: Self.libvirtCap(MiBps))
        }
    }

    /// Our 0 ("uncapped") as libvirt's largest cap; always explicit, since libvirt would
    /// otherwise keep the last cap set on the guest, even from an earlier migration.
    private static func libvirtCap(_ MiBps: Int) -> Int {
        MiBps == 0 ? MigrationParameters.uncappedMiBps : MiBps
    }

    /// The pending `migrate` reports the outcome: `.migrationFailed`, or `.migrationCompleted`
    /// when the abort came after switchover.
    public func abortMigration(job: Int, vm: String, report: @escaping @Sendable (HypervisorEvent) -> Void) {
        guard let migration = state.withLock({ $0.migrations[job] }), migration.abort() else { return }
        onControlQueue(vm) {
            // libvirt has no job to abort until the migration is under way: retry until it is,
            // or until the migration ended by itself.
            while migration.isRunning {
                do throws(LibvirtError) {
                    try self.libvirt.abortJob(vm)
                    return
                } catch where error.isInvalidForState {
                    Thread.sleep(forTimeInterval: 0.1)
                } catch {
                    return
                }
            }
        }
    }

    /// Running and paused guests (a paused guest still occupies this node). Guests a previous
    /// run staged and never started are destroyed here: they never ran.
    public func inventory() throws -> [String] {
        let libvirt = self.libvirt
        let names = try libvirt.allDomains().filter { domain in
            guard domain.isActive && (domain.state == .running || domain.state == .paused) else { return false }
            guard domain.state == .paused, (try? libvirt.metadata(of: domain.name, uri: DomainXML.stagedNamespace)) != nil else { return true }
            try? self.remove(domain.name)
            return false
        }.map(\.name).sorted()
        state.withLock { state in
            for name in names where state.guests[name] == nil { state.guests[name] = .running }
        }
        return names
    }

    // MARK: migration

    /// Runs on the guest's queue: the blocking migrate call, with a progress poller beside it.
    /// The migrate call gets a connection of its own: while a call blocks on a connection,
    /// libvirt answers other calls on it only after 1–3 s (measured), which would stall the
    /// progress polls, bandwidth changes, aborts and every other guest's operations.
    private func run(_ migration: OutgoingMigration, to destinationURI: String, flags: MigrationFlags,
                     report: @escaping @Sendable (HypervisorEvent) -> Void) {
        let (job, vm) = (migration.job, migration.vm)
        guard let bandwidth = migration.begin() else {
            return report(.migrationFailed(job: job, reason: "aborted before it started"))
        }
        defer { migration.end() }
        let migrating: LibvirtConnection
        do {
            migrating = try LibvirtConnection(uri: uri)
        } catch {
            return report(.migrationFailed(job: job, reason: error.message))
        }
        let libvirt = self.libvirt
        let rate = TransferRate()
        let began = ContinuousClock.now
        let poller = ProgressPoller {
            // Until the destination QEMU is up (~1 s under TCG) the job has no figures yet.
            guard let stats = try? libvirt.jobStats(vm), stats.type.isRunning, stats.dataTotal > 0 else { return }
            // Our monotonic clock, not the job's elapsed time: libvirt counts that on the wall
            // clock, which may step back (NTP, an operator) in the middle of a migration.
            let sending = rate.add(elapsedMs: Self.milliseconds(since: began), transferred: stats.dataProcessed)
            report(.migrationProgress(job: job, MigrationProgress(stats, rateMiBps: sending)))
        }
        let parameters = MigrationParameters(bandwidthMiBps: Self.libvirtCap(bandwidth))
        let outcome = Result { () throws(LibvirtError) in
            try migrating.migrate(vm, to: destinationURI, parameters: parameters, flags: flags)
        }
        let wallMs = Self.milliseconds(since: began)
        poller.stop()
        switch outcome {
        case .success:
            record(vm, .gone)
            let downtime = migration.completedStats(waitingAtMost: .seconds(2))?.downtimeMs ?? 0
            // What set-up and switch-over cost, for the scheduler's start-ahead; only when the
            // transfer was watched long enough to tell.
            let span = rate.transferSpanMs
            if span >= 1_000 {
                report(.migrationOverhead(ms: Int(clamping: wallMs > span ? wallMs - span : 0)))
            }
            report(.migrationCompleted(job: job, vm: vm, downtimeMs: Int(clamping: downtime)))
        case let .failure(error):
            report(.migrationFailed(job: job, reason: error.message))
        }
    }

    /// Whole milliseconds since `start` on the monotonic clock, never negative.
    static func milliseconds(since start: ContinuousClock.Instant) -> UInt64 {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds).multipliedReportingOverflow(by: 1000).partialValue + UInt64(attoseconds / 1_000_000_000_000_000)
    }

    /// The source's final statistics (with the downtime) arrive only as an event: a transient
    /// guest no longer exists here once its migration returns.
    private func jobCompleted(_ vm: String, _ stats: JobStats) {
        state.withLock { $0.migrations.values.first { $0.vm == vm && $0.hasBegun } }?.deliver(stats)
    }

    // MARK: events

    private func subscribe(to connection: LibvirtConnection) throws(LibvirtError) {
        try connection.onLifecycleEvent { [weak self] event in
            guard let self else { return }
            self.onGuestQueue(event.domain) { self.apply(event) }
        }
        try connection.onJobCompleted { [weak self] vm, stats in self?.jobCompleted(vm, stats) }
        try connection.onClose { [weak self] _ in self?.reconnect() }
    }

    /// Runs on the guest's queue: turns libvirt's lifecycle events into the contract's
    /// unsolicited reports. Our own stops are already `.gone`, so their events say nothing.
    func apply(_ event: DomainLifecycleEvent) {
        let vm = event.domain
        // A stop event can arrive after the same name was created again (an unstaged guest
        // staged anew, a stop followed by a start): it speaks of an incarnation already gone.
        // When libvirt cannot say, the event is no proof that this guest stopped: nothing is
        // claimed (`.queryFailed`, not a crash) until a recheck can tell.
        if case .stopped = event.change {
            do throws(LibvirtError) {
                if try guests.domain(named: vm)?.isActive == true { return }
            } catch {
                guard [nil, .running, .arriving, .unknown].contains(presence(vm)) else { return }
                notify(.queryFailed(vm, reason: "libvirt reported it stopped but cannot be asked whether it runs: \(error.message)"))
                return recheckLater(vm, attempt: 1)
            }
        }
        let report: HypervisorEvent? = state.withLock { state in
            let before = state.guests[vm]
            switch event.change {
            case .started(.migrated):
                state.guests[vm] = .arriving
            case .resumed(.migrated), .resumed(.postcopy):
                guard before == .arriving else { return nil }
                state.guests[vm] = .running
                return .running(vm)
            case .stopped(.migrated):
                state.guests[vm] = .gone
            case .stopped:
                state.guests[vm] = .gone
                // A failed arrival never ran here; anything else that stops unasked crashed.
                if before == .running || before == nil { return .stopped(vm, crashed: true) }
            default:
                break
            }
            return nil
        }
        if let report { notify(report) }
    }

    /// The daemon went away (restart, crash, dead socket): reopen every second until it
    /// answers, then check the guests whose events may have been lost meanwhile.
    private func reconnect() {
        Thread { [weak self] in
            while true {
                Thread.sleep(forTimeInterval: 1)
                guard let self else { return }
                if self.reopen() { return }
            }
        }.start()
    }

    /// Opens and subscribes a fresh connection and swaps it in; false while the daemon is away.
    private func reopen() -> Bool {
        let fresh: LibvirtConnection
        do {
            fresh = try LibvirtConnection(uri: uri)
            try subscribe(to: fresh)
        } catch {
            return false
        }
        let old = connection.withLock { current in
            defer { current = fresh }
            return current
        }
        old.close()
        let names = state.withLock { $0.guests.filter { $0.value != .gone }.map(\.key) }
        for vm in names { onGuestQueue(vm) { self.recheck(vm) } }
        return true
    }

    /// How often a guest libvirt could not be asked about is asked again (`retryPause` apart,
    /// doubling) before the agent stops asking; `.queryFailed` was reported at the first.
    static let recheckAttempts = 6

    /// Runs `recheck` on the guest's queue after a pause.
    private func recheckLater(_ vm: String, attempt: Int) {
        let delayMs = Int(retryPauseSeconds * 1000) << min(attempt - 1, 5)
        queues(for: vm).work.asyncAfter(deadline: .now() + .milliseconds(delayMs)) {
            self.recheck(vm, attempt: attempt)
        }
    }

    /// Runs on the guest's queue after a reconnect, or after libvirt could not be asked about the
    /// guest: reports a guest that stopped or arrived while no events came (or while nobody could
    /// tell). A query that fails again is reported once and retried a few times; it is never
    /// taken for a stop.
    func recheck(_ vm: String, attempt: Int = 0) {
        let found: DomainSummary?
        do throws(LibvirtError) { found = try guests.domain(named: vm) } catch {
            guard [.running, .arriving, .unknown].contains(presence(vm)) else { return }
            if attempt == 0 { notify(.queryFailed(vm, reason: "cannot ask libvirt whether it runs: \(error.message)")) }
            if attempt < Self.recheckAttempts { recheckLater(vm, attempt: attempt + 1) }
            return
        }
        let report: HypervisorEvent? = state.withLock { state in
            switch state.guests[vm] {
            case .unknown where found?.state == .running:
                state.guests[vm] = .running
                return .running(vm)
            case .unknown where found?.isActive != true:
                state.guests[vm] = .gone
                return .startFailed(vm, reason: "it does not run here")
            case .running where found?.isActive != true:
                state.guests[vm] = .gone
                return .stopped(vm, crashed: true)
            case .arriving where found?.isActive != true:
                state.guests[vm] = .gone
            case .arriving where found?.state == .running:
                state.guests[vm] = .running
                return .running(vm)
            default:
                break
            }
            return nil
        }
        if let report { notify(report) }
    }

    // MARK: helpers

    private func notify(_ event: HypervisorEvent) {
        state.withLock { $0.watcher }?(event)
    }

    private func record(_ vm: String, _ presence: Presence) {
        state.withLock { $0.guests[vm] = presence }
    }

    private func presence(_ vm: String) -> Presence? {
        state.withLock { $0.guests[vm] }
    }

    /// Destroys the guest if it runs and removes its persistent definition if it has one; a
    /// guest that does not exist is already stopped.
    private func remove(_ vm: String) throws(LibvirtError) {
        let libvirt = guests
        guard let guest = try libvirt.domain(named: vm) else { return }
        if guest.isActive {
            do { try libvirt.destroy(vm) } catch where error.isNoSuchDomain || error.isInvalidForState {}
        }
        if guest.isPersistent {
            do { try libvirt.undefine(vm) } catch where error.isNoSuchDomain {}
        }
    }

    private func queues(for vm: String) -> GuestQueues {
        state.withLock { state in
            if let queues = state.queues[vm] { return queues }
            let queues = GuestQueues(work: DispatchQueue(label: "corral.libvirt.\(vm)"),
                                     control: DispatchQueue(label: "corral.libvirt.\(vm).control"))
            state.queues[vm] = queues
            return queues
        }
    }

    private func onGuestQueue(_ vm: String, _ work: @escaping @Sendable () -> Void) {
        queues(for: vm).work.async(execute: work)
    }

    private func onControlQueue(_ vm: String, _ work: @escaping @Sendable () -> Void) {
        queues(for: vm).control.async(execute: work)
    }
}

/// One `migrate` call from queued to finished, shared by the guest's queue (which runs it), its
/// control queue (bandwidth, abort) and libvirt's event thread (final statistics).
/// The libvirt calls that decide whether a guest is here or gone, apart so tests can make them
/// fail; the connection itself in production.
protocol GuestLookup: Sendable {
    func domain(named name: String) throws(LibvirtError) -> DomainSummary?
    func destroy(_ name: String) throws(LibvirtError)
    func undefine(_ name: String) throws(LibvirtError)
}

extension LibvirtConnection: GuestLookup {}

private final class OutgoingMigration: Sendable {
    let job: Int
    let vm: String
    private let progress: Mutex<Progress>
    private let finalStats = Mutex<JobStats?>(nil)
    private let finalStatsArrived = DispatchSemaphore(value: 0)

    private struct Progress {
        enum Phase { case queued, running, finished }
        var phase = Phase.queued
        var bandwidthMiBps: Int
        var aborted = false
    }

    init(job: Int, vm: String, bandwidthMiBps: Int) {
        self.job = job
        self.vm = vm
        self.progress = Mutex(Progress(bandwidthMiBps: bandwidthMiBps))
    }

    /// Marks it running and returns the bandwidth to start with, or nil when aborted before.
    func begin() -> Int? {
        progress.withLock { progress in
            guard !progress.aborted else { return nil }
            progress.phase = .running
            return progress.bandwidthMiBps
        }
    }

    func end() {
        progress.withLock { $0.phase = .finished }
    }

    var isRunning: Bool { progress.withLock { $0.phase == .running } }
    var hasBegun: Bool { progress.withLock { $0.phase != .queued } }

    /// Records the new cap; true when the migration runs and libvirt must be told.
    func changeBandwidth(to MiBps: Int) -> Bool {
        progress.withLock { progress in
            progress.bandwidthMiBps = MiBps
            return progress.phase == .running
        }
    }

    /// Records the abort; true when the migration runs and libvirt's job must be aborted
    /// (a queued one fails when it begins, a finished one has reported already).
    func abort() -> Bool {
        progress.withLock { progress in
            progress.aborted = true
            return progress.phase == .running
        }
    }

    func deliver(_ stats: JobStats) {
        finalStats.withLock { $0 = stats }
        finalStatsArrived.signal()
    }

    /// The completed job's statistics, waiting for their event at most `timeout`.
    func completedStats(waitingAtMost timeout: DispatchTimeInterval) -> JobStats? {
        _ = finalStatsArrived.wait(timeout: .now() + timeout)
        return finalStats.withLock { $0 }
    }
}

/// Calls `poll` every 500 ms on a thread of its own until `stop()`, which returns only after
/// the last poll finished, so nothing it reports can follow what the caller reports next.
private final class ProgressPoller: Sendable {
    private let stopRequested = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    init(_ poll: @escaping @Sendable () -> Void) {
        let (stopRequested, stopped) = (self.stopRequested, self.stopped)
        Thread {
            while stopRequested.wait(timeout: .now() + .milliseconds(500)) == .timedOut { poll() }
            stopped.signal()
        }.start()
    }

    func stop() {
        stopRequested.signal()
        stopped.wait()
    }
}

private extension MigrationProgress {
    /// Sizes rounded up (a last partial MiB still remains), rates to the nearest MiB/s.
    init(_ stats: JobStats, rateMiBps: Int) {
        let mebibyte: UInt64 = 1 << 20
        // Division first: figures near UInt64.max (a garbled answer) must not overflow.
        func up(_ bytes: UInt64) -> Int { Int(clamping: bytes / mebibyte + (bytes % mebibyte == 0 ? 0 : 1)) }
        self.init(totalMiB: up(stats.dataTotal),
                  remainingMiB: up(stats.dataRemaining),
                  rateMiBps: rateMiBps,
                  dirtyRateMiBps: Int(clamping: stats.memoryDirtyBytesPerSecond / mebibyte + (stats.memoryDirtyBytesPerSecond % mebibyte >= mebibyte / 2 ? 1 : 0)))
    }
}
