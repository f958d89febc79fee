import Synchronization

/// A migration's sending rate from the growth of the bytes it has transferred, over about two
/// seconds of job-statistics polls. QEMU's own figure (`memory_bps`) counts what went into the
/// socket, so it spikes far above the wire while a new stream fills its send buffer (measured:
/// six streams from one node summed to 40–56 MiB/s on a 23.8 MiB/s link), and the scheduler
/// learns each node's link from these rates. The first sample is left out (it holds the buffer
/// fill), and the rate is 0 (unknown) until two later samples are 900 ms apart.
final class TransferRate: Sendable {
    private let samples = Mutex<[(ms: UInt64, bytes: UInt64)]>([])
    private let skipped = Mutex(false)
    /// Job-elapsed times of the first and the last sample at which the transferred bytes grew.
    private let growth = Mutex<(first: UInt64?, last: UInt64?, bytes: UInt64)>((nil, nil, 0))

    /// How long the job was seen moving bytes (ms): its run time minus this is set-up and
    /// switch-over, which send nothing.
    var transferSpanMs: UInt64 {
        growth.withLock { g in g.first.flatMap { first in g.last.map { $0 - first } } ?? 0 }
    }

    static let windowMs: UInt64 = 2_000
    static let minimumSpanMs: UInt64 = 900

    /// Adds a sample (the job's elapsed time and transferred bytes); returns the rate in MiB/s.
    func add(elapsedMs: UInt64, transferred: UInt64) -> Int {
        growth.withLock { g in
            guard transferred > g.bytes else { return }
            if g.first == nil { g.first = elapsedMs }
            g.last = elapsedMs
            g.bytes = transferred
        }
        let first = skipped.withLock { seen in
            defer { seen = true }
            return !seen
        }
        guard !first else { return 0 }
        return samples.withLock { samples in
            samples.append((elapsedMs, transferred))
            samples.removeAll { elapsedMs - $0.ms > Self.windowMs }
            guard let oldest = samples.first, elapsedMs - oldest.ms >= Self.minimumSpanMs, transferred >= oldest.bytes else { return 0 }
            let bytesPerSecond = Double(transferred - oldest.bytes) * 1000 / Double(elapsedMs - oldest.ms)
            return Int((bytesPerSecond / 1_048_576).rounded())
        }
    }
}
