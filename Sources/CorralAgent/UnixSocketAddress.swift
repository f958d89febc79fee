import Glibc

/// A filesystem path packed into `sockaddr_un`, validated once so bind and connect cannot silently truncate it.
struct UnixSocketAddress {
    /// Longest path that fits `sun_path` with its terminating NUL.
    static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    let path: String
    private var storage = sockaddr_un()

    init(path: String) throws(ControlSocketError) {
        let bytes = Array(path.utf8)
        guard bytes.count <= Self.maximumPathLength else {
            throw .pathTooLong(path: path, limit: Self.maximumPathLength)
        }
        self.path = path
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: bytes) }
    }

    /// Binds `socket` to this path; returns the errno on failure.
    func bind(_ socket: Int32) -> SystemCallFailure? {
        withSocketAddress { Glibc.bind(socket, $0, $1) == 0 ? nil : .current() }
    }

    /// Connects `socket` to this path; returns the errno on failure.
    func connect(_ socket: Int32) -> SystemCallFailure? {
        withSocketAddress { Glibc.connect(socket, $0, $1) == 0 ? nil : .current() }
    }

    private func withSocketAddress<Result>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) -> Result {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}
