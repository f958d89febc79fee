import Testing
@testable import CorralAgent

/// The migration rate the scheduler learns links from: the wire rate, not QEMU's buffer fill.
@Suite struct TransferRateTests {
    /// A stream that dumps 8 MiB into its socket buffer at once, then sends 20 MiB/s: the
    /// first sample is left out, nothing is claimed until 900 ms of later samples, and the
    /// rate is the steady 20 MiB/s, never the burst.
    @Test func burstAtTheStartIsNotARate() {
        let rate = TransferRate()
        let mebibyte: UInt64 = 1 << 20
        var reported: [Int] = []
        for step in 0...8 {
            let ms = UInt64(500 + step * 500)
            let bytes = 8 * mebibyte + UInt64(step) * 10 * mebibyte
            reported.append(rate.add(elapsedMs: ms, transferred: bytes))
        }
        #expect(reported[0] == 0 && reported[1] == 0 && reported[2] == 0)
        #expect(reported[3...].allSatisfy { $0 == 20 }, "\(reported)")
    }

    /// A counter that goes backwards (a new job under the same poller) gives no rate.
    @Test func shrinkingCounterGivesNoRate() {
        let rate = TransferRate()
        _ = rate.add(elapsedMs: 100, transferred: 1 << 30)
        _ = rate.add(elapsedMs: 600, transferred: 1 << 30)
        #expect(rate.add(elapsedMs: 1600, transferred: 1 << 20) == 0)
    }
}
