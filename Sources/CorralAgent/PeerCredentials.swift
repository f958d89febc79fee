import Glibc

/// Identity of the process at the other end of a control connection, as the
/// kernel recorded it at connect time; the basis for authorizing operator commands.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// Supplementary groups captured at connect time (SO_PEERGROUPS) rather than read
    /// from /proc/<pid>/status, so a peer that exits and has its pid reused cannot borrow another process's groups.
    public let supplementaryGroups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, supplementaryGroups: [UInt32]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.supplementaryGroups = supplementaryGroups
    }

    /// Whether the peer may issue commands: root always; otherwise membership of `groupID`, primary or supplementary.
    public func isRootOrMember(ofGroup groupID: UInt32?) -> Bool {
        if uid == 0 { return true }
        guard let groupID else { return false }
        return gid == groupID || supplementaryGroups.contains(groupID)
    }

    public var description: String {
        "pid \(pid) uid \(uid) gid \(gid) groups \(supplementaryGroups)"
    }

    /// Reads the credentials of the process connected to a Unix stream socket.
    static func ofConnectedSocket(_ socket: Int32) throws(SystemCallFailure) -> PeerCredentials {
        var credentials = KernelUcred()
        var length = socklen_t(MemoryLayout<KernelUcred>.size)
        guard getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else { throw .current() }
        return PeerCredentials(
            pid: credentials.pid, uid: credentials.uid, gid: credentials.gid,
            supplementaryGroups: try supplementaryGroups(of: socket))
    }

    private static func supplementaryGroups(of socket: Int32) throws(SystemCallFailure) -> [UInt32] {
        var groups = [gid_t](repeating: 0, count: 64)
        while true {
            var length = socklen_t(groups.count * MemoryLayout<gid_t>.size)
            if getsockopt(socket, SOL_SOCKET, SO_PEERGROUPS, &groups, &length) == 0 {
                return Array(groups.prefix(Int(length) / MemoryLayout<gid_t>.size))
            }
            // ERANGE reports the size actually needed in `length`.
            guard errno == ERANGE, Int(length) > groups.count * MemoryLayout<gid_t>.size else { throw .current() }
            groups = [gid_t](repeating: 0, count: Int(length) / MemoryLayout<gid_t>.size)
        }
    }
}

/// Layout of Linux `struct ucred`, which Glibc only exposes to Swift under _GNU_SOURCE.
private struct KernelUcred {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}
