import CCorosync
import Glibc

/// Runs one group's Corosync dispatch loop on a dedicated thread and turns the C callbacks into
/// `CorosyncEvent`s. A thread of its own because the loop blocks in poll() and in C dispatch
/// calls, which must not hold a thread of Swift's cooperative pool. Kept apart from
/// `CorosyncGroup` so the running thread never keeps the group alive: the group's deinit can
/// still stop it.
final class EventDispatcher: Sendable {
    let cpg: cpg_handle_t
    let quorum: votequorum_handle_t
    let continuation: AsyncStream<CorosyncEvent>.Continuation
    private let cpgFD: Int32
    private let quorumFD: Int32
    private let wakeFD: Int32

    init(cpg: cpg_handle_t, cpgFD: Int32, quorum: votequorum_handle_t, quorumFD: Int32,
         wakeFD: Int32, continuation: AsyncStream<CorosyncEvent>.Continuation) {
        self.cpg = cpg
        self.cpgFD = cpgFD
        self.quorum = quorum
        self.quorumFD = quorumFD
        self.wakeFD = wakeFD
        self.continuation = continuation
    }

    /// The callback tables; their functions find this object through the handles' context.
    static let cpgCallbacks = cpg_callbacks_t(cpg_deliver_fn: deliver, cpg_confchg_fn: configurationChanged)
    static let quorumCallbacks = votequorum_callbacks_t(
        votequorum_quorum_notify_fn: quorumChanged,
        votequorum_expectedvotes_notify_fn: nil,
        votequorum_nodelist_notify_fn: nil)

    /// Polls both handles' fds and the wake fd until `stop()` or until Corosync goes away, in
    /// which case it reports `.disconnected` and finishes the stream.
    func run() {
        var fds = [cpgFD, quorumFD, wakeFD].map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while true {
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                return disconnect(CorosyncError(CS_ERR_LIBRARY, "poll"))
            }
            if fds[2].revents != 0 { return }
            if let error = service(fds[0], "cpg_dispatch", { cpg_dispatch(cpg, CS_DISPATCH_ALL) })
                ?? service(fds[1], "votequorum_dispatch", { votequorum_dispatch(quorum, CS_DISPATCH_ALL) }) {
                return disconnect(error)
            }
        }
    }

    /// Makes `run()` return at its next wake-up.
    func stop() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, MemoryLayout<UInt64>.size)
    }

    /// Dispatches what is pending on a ready fd; returns an error once the connection is gone.
    /// A hang-up counts even when dispatch succeeds: votequorum_dispatch maps a dead connection
    /// to CS_OK, and TRY_AGAIN only means "nothing to read now".
    private func service(_ fd: pollfd, _ operation: String, _ dispatch: () -> cs_error_t) -> CorosyncError? {
        guard fd.revents != 0 else { return nil }
        let result = dispatch()
        if result != CS_OK && result != CS_ERR_TRY_AGAIN { return CorosyncError(result, operation) }
        if Int32(fd.revents) & (POLLHUP | POLLERR | POLLNVAL) != 0 { return CorosyncError(CS_ERR_LIBRARY, operation) }
        return nil
    }

    private func disconnect(_ error: CorosyncError) {
        continuation.yield(.disconnected(error))
        continuation.finish()
    }
}

/// The dispatcher registered as the handle's context. Callbacks run only inside dispatch calls
/// made by `run()`, which holds a strong reference, so the unretained pointer is valid.
private func dispatcher(cpg handle: cpg_handle_t) -> EventDispatcher? {
    var context: UnsafeMutableRawPointer?
    guard cpg_context_get(handle, &context) == CS_OK, let context else { return nil }
    return Unmanaged<EventDispatcher>.fromOpaque(context).takeUnretainedValue()
}

private func sortedNodeIDs(_ list: UnsafePointer<cpg_address>?, _ count: Int) -> [UInt32] {
    UnsafeBufferPointer(start: list, count: list == nil ? 0 : count).map(\.nodeid).sorted()
}

/// Copies the payload out: Corosync reuses the buffer once the callback returns.
private func deliver(handle: cpg_handle_t, group: UnsafePointer<cpg_name>?, nodeID: UInt32, pid: UInt32,
                     message: UnsafeMutableRawPointer?, length: Int) {
    let payload = message.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
    dispatcher(cpg: handle)?.continuation.yield(.delivered(from: nodeID, payload: payload))
}

private func configurationChanged(
    handle: cpg_handle_t, group: UnsafePointer<cpg_name>?,
    members: UnsafePointer<cpg_address>?, memberCount: Int,
    left: UnsafePointer<cpg_address>?, leftCount: Int,
    joined: UnsafePointer<cpg_address>?, joinedCount: Int
) {
    dispatcher(cpg: handle)?.continuation.yield(.membership(
        members: sortedNodeIDs(members, memberCount),
        joined: sortedNodeIDs(joined, joinedCount),
        left: sortedNodeIDs(left, leftCount),
        agentOnly: Array(Set(UnsafeBufferPointer(start: left, count: left == nil ? 0 : leftCount)
            .filter { $0.reason == CPG_REASON_LEAVE.rawValue || $0.reason == CPG_REASON_PROCDOWN.rawValue }
            .map(\.nodeid))).sorted()))
}

private func quorumChanged(handle: votequorum_handle_t, trackContext: UInt64, quorate: UInt32,
                           nodeCount: UInt32, nodes: UnsafeMutablePointer<votequorum_node_t>?) {
    var context: UnsafeMutableRawPointer?
    guard votequorum_context_get(handle, &context) == CS_OK, let context else { return }
    let members = UnsafeBufferPointer(start: nodes, count: nodes == nil ? 0 : Int(nodeCount))
        .filter { $0.state == VOTEQUORUM_NODESTATE_MEMBER }
        .map(\.nodeid)
        .sorted()
    Unmanaged<EventDispatcher>.fromOpaque(context).takeUnretainedValue()
        .continuation.yield(.quorum(quorate: quorate != 0, members: members))
}
