import Foundation
import Glibc
import Synchronization
import Testing
@testable import CorralAgent

/// Records handler calls so tests can prove which peers reached the handler.
private final class HandlerLog: Sendable {
    private let peers = Mutex<[PeerCredentials]>([])

    func record(_ peer: PeerCredentials) { peers.withLock { $0.append(peer) } }
    var recordedPeers: [PeerCredentials] { peers.withLock { $0 } }
}

/// A one-way switch one task sets and another polls.
private final class Flag: Sendable {
    private let value = Mutex(false)

    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// The primary group of the test process, so round trips pass for non-root users too.
private let currentGroup: (name: String, id: UInt32) = {
    let entry = getgrgid(getgid())!.pointee
    return (String(cString: entry.gr_name), entry.gr_gid)
}()

private let isRoot = getuid() == 0

@Suite("ControlSocket")
struct ControlSocketTests {
    /// Runs `body` against a served socket in a fresh scratch directory and always shuts everything down.
    private func withServer(
        allowedGroup: String? = currentGroup.name,
        handler: @escaping ControlSocketServer.Handler = { request, peer in Array("uid=\(peer.uid) ".utf8) + request },
        _ body: (_ server: ControlSocketServer, _ socketPath: String, _ scratch: ScratchDirectory) async throws -> Void
    ) async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/run/corral/corral.sock"
        let server = try ControlSocketServer(path: socketPath, allowedGroup: allowedGroup, handler: handler)
        let serving = Task { await server.run() }
        do {
            try await body(server, socketPath, scratch)
        } catch {
            server.stop()
            await serving.value
            throw error
        }
        server.stop()
        await serving.value
    }

    private func request(_ path: String, _ line: String, timeout: Double = 10) async -> Result<String, ControlSocketError> {
        await offCooperativePool {
            Result { () throws(ControlSocketError) in
                String(decoding: try ControlSocketClient.request(path: path, line: Array(line.utf8), timeoutSeconds: timeout), as: UTF8.self)
            }
        }
    }

    @Test func requestRoundTripsWithKernelVerifiedPeer() async throws {
        let log = HandlerLog()
        try await withServer(handler: { request, peer in
            log.record(peer)
            return Array("uid=\(peer.uid) ".utf8) + request
        }) { _, socketPath, _ in
            let reply = await request(socketPath, #"{"cmd":"status"}"#)
            #expect(reply == .success(#"uid=\#(getuid()) {"cmd":"status"}"#))
            #expect(log.recordedPeers.map(\.pid) == [getpid()])
            #expect(log.recordedPeers.map(\.uid) == [getuid()])
        }
    }

    @Test func socketIsGroupWritableOnlyAndParentIsCreated() async throws {
        try await withServer { _, socketPath, scratch in
            var status = stat()
            #expect(stat(socketPath, &status) == 0)
            #expect(status.st_mode & S_IFMT == S_IFSOCK)
            #expect(status.st_mode & 0o7777 == 0o660)
            #expect(status.st_gid == currentGroup.id)
            #expect(stat(scratch.path + "/run/corral", &status) == 0)
            #expect(status.st_mode & 0o7777 == 0o755)
        }
    }

    @Test func servesSeveralRequestsOnOneConnectionInOrder() async throws {
        try await withServer { _, socketPath, _ in
            let replies = await offCooperativePool { () -> [SocketLineReader.Outcome] in
                let connection = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                defer { close(connection) }
                guard (try? UnixSocketAddress(path: socketPath))?.connect(connection) == nil,
                    (try? POSIXSupport.sendAll(Array("a\nbb\n\nccc\n".utf8), to: connection)) != nil
                else { return [] }
                var reader = SocketLineReader(socket: connection, maximumLineLength: 1024)
                return (0..<4).map { _ in reader.readLine(deadline: .now + .seconds(10)) }
            }
            let prefix = "uid=\(getuid()) "
            #expect(replies == ["a", "bb", "", "ccc"].map { .line(Array((prefix + $0).utf8)) })
        }
    }

    @Test func overlongRequestGetsAnErrorReply() async throws {
        let log = HandlerLog()
        try await withServer(handler: { _, peer in
            log.record(peer)
            return []
        }) { _, socketPath, _ in
            let line = String(repeating: "x", count: ControlSocketServer.maximumRequestLength + 1)
            let reply = await request(socketPath, line)
            #expect(reply == .success(#"{"ok":false,"error":"request line exceeds 1048576 bytes"}"#))
            #expect(log.recordedPeers.isEmpty)
        }
    }

    @Test func stopEndsRunAndRemovesTheSocket() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/corral.sock"
        let server = try ControlSocketServer(path: socketPath, allowedGroup: nil) { request, _ in request }
        let serving = Task { await server.run() }
        server.stop()
        await serving.value
        server.stop()
        #expect(access(socketPath, F_OK) != 0)
        let expected = ControlSocketError.connectFailed(path: socketPath, errno: ENOENT)
        let reply = await request(socketPath, "{}")
        #expect(reply == .failure(expected))
        #expect(expected.description == "cannot connect to \(socketPath): No such file or directory (is corrald running?)")
    }

    @Test func cancellingTheRunningTaskStopsTheServer() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/corral.sock"
        let server = try ControlSocketServer(path: socketPath, allowedGroup: nil) { request, _ in request }
        let serving = Task { await server.run() }
        serving.cancel()
        await serving.value
        #expect(access(socketPath, F_OK) != 0)
    }

    @Test func replacesAStaleSocketFile() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/corral.sock"
        let abandoned = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(try UnixSocketAddress(path: socketPath).bind(abandoned) == nil)
        close(abandoned)
        let server = try ControlSocketServer(path: socketPath, allowedGroup: currentGroup.name) { request, _ in request }
        let serving = Task { await server.run() }
        let reply = await request(socketPath, "ping")
        #expect(reply == .success("ping"))
        server.stop()
        await serving.value
    }

    @Test func refusesToTakeOverALiveSocket() async throws {
        try await withServer { _, socketPath, _ in
            #expect(throws: ControlSocketError.alreadyInUse(path: socketPath)) {
                try ControlSocketServer(path: socketPath, allowedGroup: nil) { request, _ in request }
            }
        }
    }

    @Test func refusesToDeleteANonSocketFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/corral.sock"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8)))
        #expect(throws: ControlSocketError.notASocket(path: path)) {
            try ControlSocketServer(path: path, allowedGroup: nil) { request, _ in request }
        }
        #expect(FileManager.default.contents(atPath: path) == Data("keep me".utf8))
    }

    @Test func rejectsPathsThatDoNotFitASocketAddress() {
        let path = "/tmp/" + String(repeating: "p", count: 200)
        #expect(throws: ControlSocketError.pathTooLong(path: path, limit: 107)) {
            try ControlSocketServer(path: path, allowedGroup: nil) { request, _ in request }
        }
        #expect(throws: ControlSocketError.pathTooLong(path: path, limit: 107)) {
            try ControlSocketClient.request(path: path, line: [], timeoutSeconds: 1)
        }
    }

    @Test func rejectsUnknownGroup() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        #expect(throws: ControlSocketError.unknownGroup("corral-no-such-group")) {
            try ControlSocketServer(path: scratch.path + "/corral.sock", allowedGroup: "corral-no-such-group") { request, _ in request }
        }
    }

    @Test func clientRefusesMultiLineRequests() {
        #expect(throws: ControlSocketError.requestContainsNewline) {
            try ControlSocketClient.request(path: "/nonexistent.sock", line: Array("a\nb".utf8), timeoutSeconds: 1)
        }
    }

    /// The handler answers only once the client has given up (no sleep: it waits for the
    /// test's release, bounded so a client that never gives up cannot hang the server).
    @Test func clientTimesOutOnASlowHandler() async throws {
        let released = Flag()
        try await withServer(handler: { request, _ in
            _ = await waitUntil(timeout: .seconds(30), poll: .milliseconds(10)) { released.isSet }
            return request
        }) { _, socketPath, _ in
            let reply = await request(socketPath, "slow", timeout: 0.2)
            released.set()
            #expect(reply == .failure(.timedOut(path: socketPath, seconds: 0.2)))
        }
    }

    @Test func errorReplyIsEscapedJSON() {
        let reply = String(decoding: ControlSocketServer.errorReply("bad \"name\"\\\n\u{1}é"), as: UTF8.self)
        #expect(reply == #"{"ok":false,"error":"bad \"name\"\\\n\u0001é"}"#)
    }

    @Test func authorizesRootAndGroupMembersOnly() {
        let root = PeerCredentials(pid: 1, uid: 0, gid: 0, supplementaryGroups: [])
        let primary = PeerCredentials(pid: 2, uid: 1000, gid: 990, supplementaryGroups: [])
        let supplementary = PeerCredentials(pid: 3, uid: 1000, gid: 1000, supplementaryGroups: [27, 990])
        let outsider = PeerCredentials(pid: 4, uid: 1000, gid: 1000, supplementaryGroups: [27])
        #expect(root.isRootOrMember(ofGroup: nil))
        #expect(primary.isRootOrMember(ofGroup: 990))
        #expect(supplementary.isRootOrMember(ofGroup: 990))
        #expect(!outsider.isRootOrMember(ofGroup: 990))
        #expect(!primary.isRootOrMember(ofGroup: nil))
    }

    // MARK: - Peers with other credentials (need root to switch identity)

    /// Runs a minimal Perl client as uid/gid 65534 via setpriv and returns what it printed.
    private func requestAsNobody(_ socketPath: String, _ line: String, groupArguments: [String]) async throws -> String {
        let script = #"""
            use Socket; $SIG{PIPE} = 'IGNORE';
            socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
            connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!\n";
            syswrite($s, "$ARGV[1]\n");
            my $reply = <$s>;
            print defined $reply ? $reply : "<no reply>\n";
            """#
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid", "65534", "--regid", "65534"] + groupArguments
            + ["--", "/usr/bin/perl", "-e", script, socketPath, line]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let printed = await offCooperativePool { output.fileHandleForReading.readDataToEndOfFile() }
        process.waitUntilExit()
        return String(decoding: printed, as: UTF8.self)
    }

    @Test(.enabled(if: isRoot, "switching to uid 65534 with setpriv requires root"))
    func refusesPeerOutsideTheGroupWithoutCallingTheHandler() async throws {
        let log = HandlerLog()
        try await withServer(allowedGroup: "root", handler: { _, peer in
            log.record(peer)
            return Array(#"{"ok":true}"#.utf8)
        }) { _, socketPath, scratch in
            // Loosen the filesystem guard so the connection reaches the server's own credential check.
            #expect(chmod(scratch.path, 0o755) == 0)
            #expect(chmod(socketPath, 0o666) == 0)
            let printed = try await requestAsNobody(socketPath, #"{"cmd":"status"}"#, groupArguments: ["--clear-groups"])
            #expect(printed == #"{"ok":false,"error":"permission denied: uid 65534 is not root or in group root"}"# + "\n")
            #expect(log.recordedPeers.isEmpty)
        }
    }

    @Test(.enabled(if: isRoot, "switching to uid 65534 with setpriv requires root"))
    func acceptsPeerWhoseSupplementaryGroupIsAllowed() async throws {
        let log = HandlerLog()
        try await withServer(allowedGroup: "root", handler: { _, peer in
            log.record(peer)
            return Array(#"{"ok":true}"#.utf8)
        }) { _, socketPath, scratch in
            #expect(chmod(scratch.path, 0o755) == 0)
            let printed = try await requestAsNobody(socketPath, #"{"cmd":"status"}"#, groupArguments: ["--groups", "0"])
            #expect(printed == #"{"ok":true}"# + "\n")
            #expect(log.recordedPeers.map(\.uid) == [65534])
            #expect(log.recordedPeers.map(\.gid) == [65534])
            #expect(log.recordedPeers.map(\.supplementaryGroups) == [[0]])
        }
    }
}
