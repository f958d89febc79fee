import Dispatch
import Foundation
import Glibc
import Synchronization

/// The operator endpoint of corrald: a Unix stream socket speaking JSON lines.
///
/// Each request line is handed to `handler` together with the peer's kernel-verified
/// credentials, and the handler's result is written back as one line. Only root and
/// members of `allowedGroup` are served; the socket's 0660 mode already keeps others
/// out, and the in-process check holds even if that mode is loosened by mistake.
///
/// Blocking socket work runs on dedicated threads (one accepting, one per open
/// connection), never on the Swift cooperative pool, so a slow client cannot starve the agent loop.
public final class ControlSocketServer: Sendable {
    public typealias Handler = @Sendable (_ request: [UInt8], _ peer: PeerCredentials) async -> [UInt8]

    /// Longest request line served; a longer one gets an error reply and the connection is closed.
    public static let maximumRequestLength = 1024 * 1024
    /// Connections beyond this many get an error reply, so a runaway script cannot exhaust threads.
    public static let maximumConcurrentConnections = 32
    /// A connection silent this long between requests is closed, releasing its thread.
    public static let idleTimeout: Duration = .seconds(60)
    /// Bounds a reply write, so a client that stops reading cannot pin its thread.
    static let sendTimeoutSeconds = 10.0

    public let path: String
    private let allowedGroup: (name: String, id: UInt32)?
    private let handler: Handler
    private let listeningSocket: Int32
    /// Written by `stop()` to wake the accept thread out of `poll`.
    private let wakeUpPipe: (read: Int32, write: Int32)
    private let state = Mutex(State())

    private struct State {
        var phase = Phase.bound
        /// Open connection sockets, so `stop()` can shut them down and wake their threads.
        var connections: Set<Int32> = []
    }

    private enum Phase { case bound, running, stopped }

    /// Creates the parent directory (0755) if needed, replaces a stale socket file,
    /// and starts listening with mode 0660 and group `allowedGroup` (when given).
    public init(path: String, allowedGroup: String?, handler: @escaping Handler) throws(ControlSocketError) {
        let address = try UnixSocketAddress(path: path)
        self.path = path
        self.handler = handler
        self.allowedGroup = try allowedGroup.map { (name) throws(ControlSocketError) in (name, try Self.groupID(named: name)) }
        let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if !parent.isEmpty {
            do {
                try POSIXSupport.makeDirectories(parent, mode: 0o755)
            } catch {
                throw .system(operation: "create directory", path: parent, errno: error.code)
            }
        }
        try Self.removeStaleSocket(at: address)
        wakeUpPipe = try Self.makeWakeUpPipe(for: path)
        do {
            listeningSocket = try Self.listen(at: address, groupID: self.allowedGroup?.id)
        } catch {
            close(wakeUpPipe.read)
            close(wakeUpPipe.write)
            throw error
        }
    }

    deinit {
        if state.withLock({ $0.phase }) == .bound { closeListeningSocket() }
        close(wakeUpPipe.read)
        close(wakeUpPipe.write)
    }

    /// Serves connections until `stop()` is called or the calling task is cancelled,
    /// then removes the socket file and returns once every open connection has finished.
    /// Returns immediately if the server already ran or was stopped.
    public func run() async {
        let isFirstRun = state.withLock { state in
            guard state.phase == .bound else { return false }
            state.phase = .running
            return true
        }
        guard isFirstRun else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                let acceptThread = Thread { [self] in
                    acceptConnectionsUntilStopped()
                    finished.resume()
                }
                acceptThread.name = "corral-control-accept"
                acceptThread.start()
            }
        } onCancel: {
            stop()
        }
    }

    /// Stops accepting, disconnects open clients and removes the socket file. Safe to call repeatedly and from any thread.
    public func stop() {
        let previousPhase = state.withLock { state in
            defer { state.phase = .stopped }
            return state.phase
        }
        switch previousPhase {
        case .bound:
            closeListeningSocket()
        case .running:
            var byte: UInt8 = 1
            _ = write(wakeUpPipe.write, &byte, 1)
        case .stopped:
            break
        }
    }

    /// A complete reply line in the protocol's error shape, `{"ok":false,"error":"..."}`, for handlers to reuse.
    public static func errorReply(_ message: String) -> [UInt8] {
        var escaped = ""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return Array("{\"ok\":false,\"error\":\"\(escaped)\"}".utf8)
    }

    // MARK: - Setup

    private static func groupID(named name: String) throws(ControlSocketError) -> UInt32 {
        var bufferSize = 1024
        while true {
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            var buffer = [CChar](repeating: 0, count: bufferSize)
            let status = getgrnam_r(name, &entry, &buffer, bufferSize, &result)
            if status == ERANGE && bufferSize < 1 << 20 {
                bufferSize *= 4
                continue
            }
            guard status == 0 else { throw .groupLookupFailed(group: name, errno: status) }
            guard result != nil else { throw .unknownGroup(name) }
            return entry.gr_gid
        }
    }

    private static func makeWakeUpPipe(for path: String) throws(ControlSocketError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw .system(operation: "create wake-up pipe for", path: path, errno: errno) }
        do {
            try POSIXSupport.setCloseOnExec(ends[0])
            try POSIXSupport.setCloseOnExec(ends[1])
        } catch {
            close(ends[0])
            close(ends[1])
            throw .system(operation: "set close-on-exec on wake-up pipe for", path: path, errno: error.code)
        }
        return (ends[0], ends[1])
    }

    /// Deletes a socket file left by a crashed server, but never a live server's socket or a non-socket file.
    private static func removeStaleSocket(at address: UnixSocketAddress) throws(ControlSocketError) {
        var status = stat()
        guard lstat(address.path, &status) == 0 else {
            if errno == ENOENT { return }
            throw .system(operation: "inspect", path: address.path, errno: errno)
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path: address.path) }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw .system(operation: "create probe socket for", path: address.path, errno: errno) }
        let connectFailure = address.connect(probe)
        close(probe)
        guard connectFailure != nil else { throw .alreadyInUse(path: address.path) }
        guard unlink(address.path) == 0 || errno == ENOENT else {
            throw .system(operation: "remove stale socket", path: address.path, errno: errno)
        }
    }

    private static func listen(at address: UnixSocketAddress, groupID: UInt32?) throws(ControlSocketError) -> Int32 {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw .system(operation: "create socket for", path: address.path, errno: errno) }
        func fail(_ operation: String, _ code: Int32, bound: Bool) -> ControlSocketError {
            close(listener)
            if bound { unlink(address.path) }
            return .system(operation: operation, path: address.path, errno: code)
        }
        if let failure = address.bind(listener) { throw fail("bind", failure.code, bound: false) }
        guard chmod(address.path, 0o660) == 0 else { throw fail("chmod", errno, bound: true) }
        if let groupID, chown(address.path, uid_t.max, groupID) != 0 { throw fail("chown", errno, bound: true) }
        guard Glibc.listen(listener, 16) == 0 else { throw fail("listen on", errno, bound: true) }
        return listener
    }

    private func closeListeningSocket() {
        close(listeningSocket)
        unlink(path)
    }

    // MARK: - Serving

    private func acceptConnectionsUntilStopped() {
        let connectionThreads = DispatchGroup()
        var descriptors = [
            pollfd(fd: listeningSocket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeUpPipe.read, events: Int16(POLLIN), revents: 0),
        ]
        while state.withLock({ $0.phase }) == .running {
            let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
            if ready > 0 && descriptors[0].revents != 0 { acceptConnection(threads: connectionThreads) }
        }
        closeListeningSocket()
        state.withLock { state in
            for connection in state.connections { shutdown(connection, Int32(SHUT_RDWR)) }
        }
        connectionThreads.wait()
    }

    private func acceptConnection(threads: DispatchGroup) {
        let connection = accept(listeningSocket, nil, nil)
        guard connection >= 0 else {
            // Out of descriptors or memory: back off instead of spinning on a listener that stays readable.
            if [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(errno) { usleep(100_000) }
            return
        }
        guard (try? POSIXSupport.setCloseOnExec(connection)) != nil,
            (try? POSIXSupport.setTimeout(SO_SNDTIMEO, seconds: Self.sendTimeoutSeconds, on: connection)) != nil,
            let peer = try? PeerCredentials.ofConnectedSocket(connection)
        else {
            close(connection)
            return
        }
        guard peer.isRootOrMember(ofGroup: allowedGroup?.id) else {
            let group = allowedGroup.map { " or in group \($0.name)" } ?? ""
            reject(connection, reason: "permission denied: uid \(peer.uid) is not root\(group)")
            return
        }
        let admitted = state.withLock { state in
            guard state.connections.count < Self.maximumConcurrentConnections else { return false }
            state.connections.insert(connection)
            return true
        }
        guard admitted else {
            reject(connection, reason: "too many concurrent control connections (limit \(Self.maximumConcurrentConnections))")
            return
        }
        threads.enter()
        let connectionThread = Thread { [self] in
            serve(connection, peer: peer)
            state.withLock { state in
                state.connections.remove(connection)
                close(connection)
            }
            threads.leave()
        }
        connectionThread.name = "corral-control-connection"
        connectionThread.start()
    }

    /// Replies with one error line and hangs up without reading the request.
    private func reject(_ connection: Int32, reason: String) {
        try? POSIXSupport.sendAll(Self.errorReply(reason) + [Self.newline], to: connection)
        close(connection)
    }

    private func serve(_ connection: Int32, peer: PeerCredentials) {
        var reader = SocketLineReader(socket: connection, maximumLineLength: Self.maximumRequestLength)
        while true {
            switch reader.readLine(deadline: .now + Self.idleTimeout) {
            case .line(let request):
                let response = invokeHandler(request, peer: peer)
                guard (try? POSIXSupport.sendAll(response + [Self.newline], to: connection)) != nil else { return }
            case .tooLong:
                let reason = "request line exceeds \(Self.maximumRequestLength) bytes"
                try? POSIXSupport.sendAll(Self.errorReply(reason) + [Self.newline], to: connection)
                return
            case .endOfStream, .timedOut, .failed:
                return
            }
        }
    }

    /// Runs the async handler from this dedicated thread, which may block while the handler runs on the cooperative pool.
    private func invokeHandler(_ request: [UInt8], peer: PeerCredentials) -> [UInt8] {
        let response = ResponseSlot()
        let handler = self.handler
        Task {
            response.fill(await handler(request, peer))
        }
        return response.waitForValue()
    }

    private static let newline = UInt8(ascii: "\n")
}

/// Hands one handler result from a Swift task to the connection thread waiting for it.
private final class ResponseSlot: Sendable {
    private let value = Mutex<[UInt8]?>(nil)
    private let filled = DispatchSemaphore(value: 0)

    func fill(_ bytes: [UInt8]) {
        value.withLock { $0 = bytes }
        filled.signal()
    }

    func waitForValue() -> [UInt8] {
        filled.wait()
        return value.withLock { $0 ?? [] }
    }
}
