import Synchronization

/// A migration's sending rate from the growth of the bytes it has transferred, over about two
/// seconds of job-statistics polls. QEMU's own figure (`memory_bps`) counts what went into the
/// socket, so it spikes far above the wire while a new stream fills its send buffer (measured:
/// six streams from one node summed to 40–56 MiB/s on a 23.8 MiB/s link), and the scheduler
/// learns each node's link from these rates. The first sample is left out (it holds the buffer
/// fill), and the rate is 0 (unknown) until two later samples are 900 ms apart.
///
/// Times are the caller's and should be monotonic; a time earlier than the last one (libvirt's
/// job clock follows the wall clock, which may step back) starts the window afresh instead of
/// trapping on an unsigned subtraction, and spans never go negative.
final class TransferRate: Sendable {
    private struct Window {
        var sawFirst = false
        var samples: [(ms: UInt64, bytes: UInt64)] = []
        /// Job-elapsed times of the first and the last sample at which the bytes grew.
        var firstGrowth: UInt64?
        var lastGrowth: UInt64?
        var bytes: UInt64 = 0
        /// The latest time added.
        var lastMs: UInt64?
    }

    private let window = Mutex(Window())

    static let windowMs: UInt64 = 2_000
    static let minimumSpanMs: UInt64 = 900

    /// How long the job was seen moving bytes (ms): its run time minus this is set-up and
    /// switch-over, which send nothing.
    var transferSpanMs: UInt64 {
        window.withLock { w in
            guard let first = w.firstGrowth, let last = w.lastGrowth, last >= first else { return 0 }
            return last - first
        }
    }

    /// Adds a sample (the job's elapsed time and transferred bytes); returns the rate in MiB/s.
    func add(elapsedMs: UInt64, transferred: UInt64) -> Int {
        window.withLock { w in
            if let last = w.lastMs, elapsedMs < last {
                // Time went backwards: what was measured before cannot be compared with it.
                w.samples = []
                w.firstGrowth = nil
                w.lastGrowth = nil
            }
            w.lastMs = elapsedMs
            if transferred > w.bytes {
                if w.firstGrowth == nil { w.firstGrowth = elapsedMs }
                w.lastGrowth = elapsedMs
                w.bytes = transferred
            }
            guard w.sawFirst else {
                w.sawFirst = true
                return 0
            }
            w.samples.append((elapsedMs, transferred))
            w.samples.removeAll { elapsedMs &- $0.ms > Self.windowMs }
            guard let oldest = w.samples.first, elapsedMs >= oldest.ms, elapsedMs - oldest.ms >= Self.minimumSpanMs,
                  transferred >= oldest.bytes else { return 0 }
            let bytesPerSecond = Double(transferred - oldest.bytes) * 1000 / Double(elapsedMs - oldest.ms)
            return Int((bytesPerSecond / 1_048_576).rounded())
        }
    }
}
