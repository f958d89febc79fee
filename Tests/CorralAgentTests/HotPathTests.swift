import CorralCore
import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing
@testable import CorralAgent

/// Nothing on the agent's hot paths crashes or blocks its loop: the log on a full disk, a
/// broken descriptor or a stalled pipe; migration rates when the clock they are timed by steps
/// back; state saves on a slow disk.
@Suite struct HotPathTests {
    // MARK: log

    /// /dev/full answers every write with ENOSPC: lines are dropped and counted, no crash.
    @Test func logOnAFullDiskDropsLines() {
        let log = AgentLog(path: "/dev/full")
        for line in 1...3 { log.write("line \(line)") }
        #expect(log.droppedLines == 3)
    }

    /// A disk that fills up and then has space again: the first line written says how many were lost.
    @Test func logSaysSoOnceSpaceIsBack() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/log"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        let full = Mutex(false)
        let log = AgentLog(fileDescriptor: fd) { fd, bytes, count in
            if full.withLock({ $0 }) {
                errno = ENOSPC
                return -1
            }
            return Glibc.write(fd, bytes, count)
        }
        log.write("before")
        full.withLock { $0 = true }
        log.write("lost 1")
        log.write("lost 2")
        #expect(log.droppedLines == 2)
        full.withLock { $0 = false }
        log.write("after")
        #expect(log.droppedLines == 0)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3, "\(lines)")
        #expect(lines[0].hasSuffix(" before"))
        #expect(lines[1].contains("2 lines dropped") && lines[1].contains("No space left on device"), "\(lines[1])")
        #expect(lines[2].hasSuffix(" after"))
    }

    /// A closed descriptor (EBADF) is a dropped line too.
    @Test func logOnAClosedDescriptorDropsLines() {
        let log = AgentLog(fileDescriptor: 12345) { _, _, _ in
            errno = EBADF
            return -1
        }
        log.write("nowhere")
        #expect(log.droppedLines == 1)
    }

    /// A pipe whose reader stopped reading: the line is dropped at once instead of blocking.
    @Test func logToAStalledPipeDoesNotBlock() throws {
        var ends: [Int32] = [-1, -1]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        // Fill the pipe through a non-blocking duplicate (the log's own descriptor stays blocking).
        let filler = fcntl(ends[1], F_DUPFD_CLOEXEC, 0)
        try #require(filler >= 0)
        defer { close(filler) }
        _ = fcntl(filler, F_SETFL, fcntl(filler, F_GETFL) | O_NONBLOCK)
        let chunk = [UInt8](repeating: 0x2E, count: 4096)
        while chunk.withUnsafeBytes({ Glibc.write(filler, $0.baseAddress, $0.count) }) > 0 {}
        _ = fcntl(filler, F_SETFL, fcntl(filler, F_GETFL) & ~O_NONBLOCK)
        let log = AgentLog(fileDescriptor: ends[1], mayBlock: true) { fd, bytes, count in Glibc.write(fd, bytes, count) }
        log.write("would block")
        #expect(log.droppedLines == 1)
    }

    // MARK: migration timing

    /// libvirt times a migration job by the wall clock; a step back must not trap.
    @Test func transferRateSurvivesTimeGoingBackwards() {
        let rate = TransferRate()
        let mebibyte: UInt64 = 1 << 20
        _ = rate.add(elapsedMs: 10_000, transferred: 1 * mebibyte)
        _ = rate.add(elapsedMs: 10_500, transferred: 11 * mebibyte)
        _ = rate.add(elapsedMs: 11_000, transferred: 21 * mebibyte)
        // The clock steps back by an hour.
        #expect(rate.add(elapsedMs: 500, transferred: 31 * mebibyte) == 0, "no rate across the step")
        #expect(rate.transferSpanMs < 10_000)
        // And measures again after it.
        _ = rate.add(elapsedMs: 1_000, transferred: 41 * mebibyte)
        #expect(rate.add(elapsedMs: 1_500, transferred: 51 * mebibyte) == 20)
        // A step back before any growth was seen twice.
        let fresh = TransferRate()
        _ = fresh.add(elapsedMs: 5_000, transferred: mebibyte)
        _ = fresh.add(elapsedMs: 100, transferred: 2 * mebibyte)
        #expect(fresh.transferSpanMs == 0)
    }

    @Test func elapsedMillisecondsAreNeverNegative() {
        #expect(LibvirtHypervisor.milliseconds(since: ContinuousClock.now + .seconds(5)) == 0)
        #expect(LibvirtHypervisor.milliseconds(since: ContinuousClock.now - .seconds(2)) >= 2_000)
    }

    // MARK: state saves

    /// `save` returns while the disk is stuck; the saves queued meanwhile collapse into the
    /// newest state, written after the one in progress.
    @Test func stateSavesRunOffTheCallerAndTheLatestWins() async throws {
        let stuck = DispatchSemaphore(value: 0)
        let writing = Mutex(false)
        let written = Recorder<ClusterState>()
        let saver = StateSaver(write: { bytes in
            writing.withLock { $0 = true }
            stuck.wait()
            written.append(try JSONCoding.decode(ClusterState.self, from: bytes))
        }, log: { _ in })
        var states: [ClusterState] = []
        for version in 1...5 as ClosedRange<UInt64> {
            var state = ClusterState()
            state.version = version
            states.append(state)
        }
        saver.save(states[0])
        #expect(await eventually { writing.withLock { $0 } }, "the first save is under way")
        for state in states[1...] { saver.save(state) }
        #expect(written.all.isEmpty, "every save returned while the disk was stuck")
        stuck.signal()
        stuck.signal()
        #expect(await eventually { written.all.count == 2 })
        saver.flush()
        #expect(written.all.map(\.version) == [1, 5], "in order, and the backlog as its newest state")
    }

    /// A failing disk is logged once, and its recovery once; the real store writes the file.
    @Test func stateSaveFailuresAreLoggedOnce() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let failing = Mutex(true)
        let lines = Recorder<String>()
        let store = StateFileStore(directory: scratch.path + "/state")
        let saver = StateSaver(write: { bytes in
            if failing.withLock({ $0 }) { throw StateFileError.io(path: "state.tmp", operation: "write", errno: ENOSPC) }
            try store.save(bytes)
        }, log: { lines.append($0) })
        var state = ClusterState()
        for version in 1...3 as ClosedRange<UInt64> {
            state.version = version
            saver.save(state)
            saver.flush()
        }
        #expect(lines.all.count == 1 && lines.all[0].contains("No space left on device"), "\(lines.all)")
        failing.withLock { $0 = false }
        state.version = 4
        saver.save(state)
        saver.flush()
        #expect(lines.all.count == 2 && lines.all[1].contains("saved again"), "\(lines.all)")
        let saved = try #require(try store.load())
        #expect(try JSONCoding.decode(ClusterState.self, from: saved).version == 4)
    }
}
