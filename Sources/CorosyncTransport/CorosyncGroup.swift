import CCorosync
import Glibc
import Synchronization

/// Membership of one CPG process group plus this node's quorum view: multicast in agreed order,
/// and one ordered stream of deliveries, membership changes and quorum changes.
/// Events are buffered without bound, so consume `events` promptly. A process can hold only one
/// open group per name (CPG answers a second join with `CS_ERR_EXIST`).
public final class CorosyncGroup: Sendable {
    /// This node's Corosync node id.
    public let localNodeID: UInt32
    public let groupName: String
    /// Finishes after `close()` or after `.disconnected`.
    public let events: AsyncStream<CorosyncEvent>

    private let dispatcher: EventDispatcher
    private let wakeFD: Int32
    private let thread: pthread_t
    /// True until `close()`. Its lock also serializes requests: a libqb IPC connection takes
    /// one request at a time, and `close()` must not finalize handles under a running request.
    private let isOpen = Mutex(true)

    /// Connects to CPG and votequorum, joins `groupName` (at most 128 bytes) and starts the
    /// dispatch thread. The first events are our own join and the current quorum state.
    public init(groupName: String) throws(CorosyncError) {
        var name = cpg_name()
        guard corral_cpg_name_set(&name, groupName) == 0 else {
            throw CorosyncError(CS_ERR_NAME_TOO_LONG, "cpg_join")
        }
        let wakeFD = corral_eventfd()
        guard wakeFD >= 0 else { throw CorosyncError(CS_ERR_NO_RESOURCES, "eventfd") }
        var cpg: cpg_handle_t?
        var quorum: votequorum_handle_t?
        let (stream, continuation) = AsyncStream.makeStream(of: CorosyncEvent.self)
        do throws(CorosyncError) {
            var handle = cpg_handle_t()
            var callbacks = EventDispatcher.cpgCallbacks
            try retryingTransient("cpg_initialize") { cpg_initialize(&handle, &callbacks) }
            cpg = handle
            var quorumHandle = votequorum_handle_t()
            var quorumCallbacks = EventDispatcher.quorumCallbacks
            try retryingTransient("votequorum_initialize") { votequorum_initialize(&quorumHandle, &quorumCallbacks) }
            quorum = quorumHandle

            var nodeID: UInt32 = 0
            try retryingTransient("cpg_local_get") { cpg_local_get(handle, &nodeID) }
            var cpgFD: Int32 = -1
            try CorosyncError.check(cpg_fd_get(handle, &cpgFD), "cpg_fd_get")
            var quorumFD: Int32 = -1
            try CorosyncError.check(votequorum_fd_get(quorumHandle, &quorumFD), "votequorum_fd_get")

            let dispatcher = EventDispatcher(cpg: handle, cpgFD: cpgFD, quorum: quorumHandle, quorumFD: quorumFD,
                                             wakeFD: wakeFD, continuation: continuation)
            let context = Unmanaged.passUnretained(dispatcher).toOpaque()
            try CorosyncError.check(cpg_context_set(handle, context), "cpg_context_set")
            try CorosyncError.check(votequorum_context_set(quorumHandle, context), "votequorum_context_set")
            try retryingTransient("cpg_join") { cpg_join(handle, &name) }
            try retryingTransient("votequorum_trackstart") {
                votequorum_trackstart(quorumHandle, 0, UInt32(CS_TRACK_CHANGES | CS_TRACK_CURRENT))
            }
            self.thread = try Self.startThread(dispatcher)
            self.dispatcher = dispatcher
            self.localNodeID = nodeID
        } catch {
            if let quorum { votequorum_finalize(quorum) }
            if let cpg { cpg_finalize(cpg) }
            Glibc.close(wakeFD)
            continuation.finish()
            throw error
        }
        self.groupName = groupName
        self.wakeFD = wakeFD
        self.events = stream
    }

    private static func startThread(_ dispatcher: EventDispatcher) throws(CorosyncError) -> pthread_t {
        var thread = pthread_t()
        let retained = Unmanaged.passRetained(dispatcher)
        let result = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            Unmanaged<EventDispatcher>.fromOpaque(argument).takeRetainedValue().run()
            return nil
        }, retained.toOpaque())
        guard result == 0 else {
            retained.release()
            throw CorosyncError(CS_ERR_NO_RESOURCES, "pthread_create")
        }
        return thread
    }

    /// Sends `bytes` to every group member, ourselves included, in agreed (total) order.
    /// Retries `CS_ERR_TRY_AGAIN` for up to ~2 s, blocking the calling thread.
    public func multicast(_ bytes: [UInt8]) throws(CorosyncError) {
        try request("cpg_mcast_joined") {
            bytes.withUnsafeBytes { buffer in
                var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress),
                                   iov_len: buffer.count)
                return cpg_mcast_joined(dispatcher.cpg, CPG_TYPE_AGREED, &vector, 1)
            }
        }
    }

    /// One attempt of `multicast`, without its retries: a transient refusal (`isTransient`)
    /// comes back at once, for callers that retry on a thread of their own.
    public func multicastOnce(_ bytes: [UInt8]) throws(CorosyncError) {
        try request("cpg_mcast_joined", retrying: false) {
            bytes.withUnsafeBytes { buffer in
                var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress),
                                   iov_len: buffer.count)
                return cpg_mcast_joined(dispatcher.cpg, CPG_TYPE_AGREED, &vector, 1)
            }
        }
    }

    /// A snapshot of whether this node's partition is quorate, for code that cannot wait for the
    /// next `.quorum` event.
    public func quorumStatus() throws(CorosyncError) -> Bool {
        var info = votequorum_info()
        try request("votequorum_getinfo") { votequorum_getinfo(dispatcher.quorum, localNodeID, &info) }
        return info.flags & UInt32(VOTEQUORUM_INFO_QUORATE) != 0
    }

    private func request(_ operation: String, retrying: Bool = true, _ call: () -> cs_error_t) throws(CorosyncError) {
        try isOpen.withLock { (isOpen: inout Bool) throws(CorosyncError) in
            guard isOpen else { throw CorosyncError(CS_ERR_BAD_HANDLE, operation) }
            if retrying { try retryingTransient(operation, call) } else { try CorosyncError.check(call(), operation) }
        }
    }

    /// Leaves the group, stops the dispatch thread, releases the handles and finishes `events`.
    /// Idempotent; also called by deinit.
    public func close() {
        isOpen.withLock { isOpen in
            guard isOpen else { return }
            isOpen = false
            dispatcher.stop()
            pthread_join(thread, nil)
            var name = cpg_name()
            if corral_cpg_name_set(&name, groupName) == 0 {
                // Best effort: without a leave, the others see our exit as a process crash instead.
                try? retryingTransient("cpg_leave") { cpg_leave(dispatcher.cpg, &name) }
            }
            votequorum_trackstop(dispatcher.quorum)
            votequorum_finalize(dispatcher.quorum)
            cpg_finalize(dispatcher.cpg)
            Glibc.close(wakeFD)
            dispatcher.continuation.finish()
        }
    }

    deinit { close() }
}
