import CorralCore
import Dispatch
import Synchronization
import Testing
@testable import CorralAgent

/// Multicasts leave the agent's loop for a serial queue of their own: order kept, transient
/// refusals retried, a message that cannot be sent reported with its sequence number (the
/// agent feeds that to the core as `.broadcastFailed`).
@Suite struct BroadcasterTests {
    static func envelope(_ sequence: UInt64) -> Envelope {
        Envelope(origin: 1, sequence: sequence, body: .resyncRequest(view: "v"))
    }

    /// Sequence numbers of the envelopes in `sent`, in the order they went out.
    static func sequences(_ sent: [[UInt8]]) -> [UInt64] {
        sent.compactMap { try? EnvelopeCodec.decode($0).sequence }
    }

    @Test func transientRefusalsAreRetriedAndOrderIsKept() async {
        let failures = Recorder<(UInt64, String)>()
        let sent = Recorder<[UInt8]>()
        let refusalsLeft = Mutex(3)
        let broadcaster = Broadcaster(retryBudgetMs: 2_000) { failures.append(($0, $1)) }
        let attempt: Broadcaster.Attempt = { bytes in
            let refuse = refusalsLeft.withLock { left in
                defer { left -= 1 }
                return left > 0
            }
            if refuse { return .transient("cpg_mcast_joined failed: CS_ERR_TRY_AGAIN (6)") }
            sent.append(bytes)
            return .sent
        }
        for sequence in 1...20 as ClosedRange<UInt64> { broadcaster.send(Self.envelope(sequence), with: attempt) }
        #expect(await eventually { broadcaster.pending == 0 })
        #expect(Self.sequences(sent.all) == Array(1...20), "every message once, in the order queued")
        #expect(failures.all.isEmpty)
    }

    @Test func permanentFailureIsReportedWithItsSequence() async {
        let failures = Recorder<(UInt64, String)>()
        let sent = Recorder<[UInt8]>()
        let broadcaster = Broadcaster(retryBudgetMs: 2_000, pauseAfterFailureMs: 0) { failures.append(($0, $1)) }
        let attempt: Broadcaster.Attempt = { bytes in
            if (try? EnvelopeCodec.decode(bytes).sequence) == 2 { return .failed("cpg_mcast_joined failed: CS_ERR_BAD_HANDLE (9)") }
            sent.append(bytes)
            return .sent
        }
        for sequence in 1...3 as ClosedRange<UInt64> { broadcaster.send(Self.envelope(sequence), with: attempt) }
        #expect(await eventually { broadcaster.pending == 0 })
        #expect(failures.all.map(\.0) == [2])
        #expect(failures.all.first?.1.contains("CS_ERR_BAD_HANDLE") == true)
        #expect(Self.sequences(sent.all) == [1, 3], "the next messages still go out, in order")
    }

    /// A refusal that outlasts the retry budget is a failure, reported once, not an endless wait.
    @Test func refusalBeyondTheBudgetIsAFailure() async {
        let failures = Recorder<(UInt64, String)>()
        let tries = Mutex(0)
        let broadcaster = Broadcaster(retryBudgetMs: 30, pauseAfterFailureMs: 0) { failures.append(($0, $1)) }
        broadcaster.send(Self.envelope(7)) { _ in
            tries.withLock { $0 += 1 }
            return .transient("cpg_mcast_joined failed: CS_ERR_TRY_AGAIN (6)")
        }
        #expect(await eventually { !failures.all.isEmpty })
        #expect(failures.all.map(\.0) == [7])
        #expect(failures.all.first?.1.contains("CS_ERR_TRY_AGAIN") == true)
        #expect(tries.withLock { $0 } > 1, "retried before giving up")
    }

    /// `send` returns while a multicast blocks: the caller (the agent's loop) never waits.
    @Test func sendDoesNotWaitForTheMulticast() async {
        let release = DispatchSemaphore(value: 0)
        let sent = Recorder<[UInt8]>()
        let broadcaster = Broadcaster { _, _ in }
        broadcaster.send(Self.envelope(1)) { bytes in
            release.wait()
            sent.append(bytes)
            return .sent
        }
        broadcaster.send(Self.envelope(2)) { bytes in
            sent.append(bytes)
            return .sent
        }
        #expect(sent.all.isEmpty && broadcaster.pending == 2, "both queued behind the blocked multicast")
        release.signal()
        #expect(await eventually { broadcaster.pending == 0 })
        #expect(Self.sequences(sent.all) == [1, 2])
    }
}
