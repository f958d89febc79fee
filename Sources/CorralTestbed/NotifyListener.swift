import Foundation
import Glibc

/// Stands in for systemd's end of the sd_notify protocol: a bound AF_UNIX datagram socket
/// (a path, or `@name` for an abstract one) that tests hand to corrald as `NOTIFY_SOCKET` and
/// read back datagram by datagram. A path socket works across network namespaces, so a
/// corrald inside a local-cluster node can reach it.
public final class NotifyListener {
    public let fd: Int32
    public let name: String

    /// `name`: a path, or `@something` for an abstract socket. `receive()` waits `timeoutSeconds`.
    public init(_ name: String, timeoutSeconds: Int = 2) throws {
        self.name = name
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(step: "socket", errno: errno) }
        var bytes = Array(name.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else {
            let error = errno
            close(fd)
            throw Failure(step: "bind", errno: error)
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if name.hasPrefix("/") { unlink(name) }
    }

    /// The next datagram, or nil once the timeout passes with none.
    public func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count < 0 ? nil : String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    /// Nothing waiting now.
    public func isEmpty() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) < 0
    }

    public struct Failure: Error { public let step: String; public let errno: Int32 }
}
