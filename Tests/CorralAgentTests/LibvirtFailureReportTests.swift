import CorralCore
import Foundation
import Synchronization
import Testing
@testable import CorralAgent
@testable import LibvirtClient

/// What `LibvirtHypervisor` reports when libvirt fails: a stop that did not happen is
/// `.stopFailed`, a guest libvirt cannot be asked about is `.queryFailed` — neither is a stop.
/// Runs on libvirt's built-in test driver (`test:///default`, no daemon: its guest "test"
/// runs), with the look-ups and destroys going through a stand-in that fails on demand.
@Suite struct LibvirtFailureReportTests {
    /// Passes calls to the test driver until told to fail them (or to find no guest, as if it
    /// had stopped: the test driver's guest is shared by the whole process, so it is left alone).
    final class FailingLookup: GuestLookup, @unchecked Sendable {
        let real: LibvirtConnection
        let failing = Mutex(false)
        let gone = Mutex(false)
        static let error = LibvirtError(code: 1, domain: 0, message: "internal error: client socket is closed")

        init() throws { real = try LibvirtConnection(uri: "test:///default") }

        func domain(named name: String) throws(LibvirtError) -> DomainSummary? {
            if failing.withLock({ $0 }) { throw Self.error }
            if gone.withLock({ $0 }) { return nil }
            return try real.domain(named: name)
        }
        func destroy(_ name: String) throws(LibvirtError) {
            if failing.withLock({ $0 }) { throw Self.error }
            try real.destroy(name)
        }
        func undefine(_ name: String) throws(LibvirtError) {
            if failing.withLock({ $0 }) { throw Self.error }
            try real.undefine(name)
        }
    }

    static func hypervisor(_ lookup: FailingLookup) throws -> (LibvirtHypervisor, Recorder<HypervisorEvent>) {
        let hypervisor = try LibvirtHypervisor(uri: "test:///default", lookup: lookup, retryPause: .milliseconds(10))
        let events = Recorder<HypervisorEvent>()
        hypervisor.watch { events.append($0) }
        return (hypervisor, events)
    }

    static func isStop(_ event: HypervisorEvent) -> Bool {
        if case .stopped = event { true } else { false }
    }

    @Test func stopThatLibvirtRefusesIsStopFailed() async throws {
        let lookup = try FailingLookup()
        let (hypervisor, _) = try Self.hypervisor(lookup)
        #expect(try hypervisor.inventory() == ["test"])
        lookup.failing.withLock { $0 = true }
        let reports = Recorder<HypervisorEvent>()
        hypervisor.stop("test", report: reports.append)
        #expect(await eventually { !reports.all.isEmpty })
        guard case let .stopFailed(vm, reason)? = reports.all.first else {
            Issue.record("expected stopFailed, got \(reports.all)")
            return
        }
        #expect(vm == "test" && reason.contains("client socket is closed"))
        #expect(!reports.all.contains(where: Self.isStop))
    }

    /// A stop event arrives and libvirt cannot say whether the guest (a newer incarnation)
    /// runs: `.queryFailed`, not a crash; once libvirt answers that it runs, nothing more.
    @Test func stopEventThatCannotBeCheckedIsQueryFailedNotACrash() async throws {
        let lookup = try FailingLookup()
        let (hypervisor, events) = try Self.hypervisor(lookup)
        #expect(try hypervisor.inventory() == ["test"])
        lookup.failing.withLock { $0 = true }
        hypervisor.apply(DomainLifecycleEvent(domain: "test", change: .stopped(.destroyed)))
        #expect(await eventually { !events.all.isEmpty })
        guard case .queryFailed("test", _)? = events.all.first else {
            Issue.record("expected queryFailed, got \(events.all)")
            return
        }
        #expect(!events.all.contains(where: Self.isStop), "an unanswered question is not a crash")
        // libvirt answers again, and the guest still runs: nothing to report.
        lookup.failing.withLock { $0 = false }
        hypervisor.recheck("test")
        #expect(!events.all.contains(where: Self.isStop))
    }

    /// After a reconnect, a recheck libvirt cannot answer is `.queryFailed` (once), and the
    /// guest is asked about again; a real stop found later is a crash.
    @Test func recheckThatCannotAskIsQueryFailedThenFindsTheRealStop() async throws {
        let lookup = try FailingLookup()
        let (hypervisor, events) = try Self.hypervisor(lookup)
        #expect(try hypervisor.inventory() == ["test"])
        lookup.failing.withLock { $0 = true }
        hypervisor.recheck("test")
        #expect(events.all.count == 1)
        guard case .queryFailed("test", _)? = events.all.first else {
            Issue.record("expected queryFailed, got \(events.all)")
            return
        }
        // The guest really stops while libvirt cannot be asked; then libvirt answers.
        lookup.gone.withLock { $0 = true }
        lookup.failing.withLock { $0 = false }
        #expect(await eventually { events.all.contains(.stopped("test", crashed: true)) },
                "a later recheck observes the stop: \(events.all)")
        #expect(events.all.filter { if case .queryFailed = $0 { true } else { false } }.count == 1, "reported once")
    }
}
