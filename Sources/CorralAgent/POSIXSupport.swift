import Glibc

/// The errno of a failed system call, captured at once so later calls cannot overwrite it.
struct SystemCallFailure: Error, Equatable {
    let code: Int32

    static func current() -> SystemCallFailure { SystemCallFailure(code: errno) }
}

/// EINTR-safe wrappers for the few POSIX operations the state store and control socket share.
enum POSIXSupport {
    /// The C library's text for an errno value, e.g. "No such file or directory".
    static func describe(errno code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Writes all of `bytes` to a file, resuming after partial writes and signals.
    static func writeAll(_ bytes: [UInt8], to fileDescriptor: Int32) throws(SystemCallFailure) {
        try transferAll(bytes) { write(fileDescriptor, $0, $1) }
    }

    /// Sends all of `bytes` on a socket; a vanished peer yields EPIPE instead of killing the process with SIGPIPE.
    static func sendAll(_ bytes: [UInt8], to socket: Int32) throws(SystemCallFailure) {
        try transferAll(bytes) { send(socket, $0, $1, Int32(MSG_NOSIGNAL)) }
    }

    /// Creates `path` with `mode`, first creating missing ancestors with `ancestorMode`.
    /// An existing directory is left untouched, including its permissions.
    static func makeDirectories(_ path: String, mode: mode_t, ancestorMode: mode_t = 0o755) throws(SystemCallFailure) {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        let directory = String(trimmed)
        if mkdir(directory, mode) == 0 { return }
        switch errno {
        case EEXIST:
            var status = stat()
            guard stat(directory, &status) == 0 else { throw .current() }
            guard status.st_mode & S_IFMT == S_IFDIR else { throw SystemCallFailure(code: ENOTDIR) }
        case ENOENT:
            guard let slash = directory.lastIndex(of: "/") else { throw SystemCallFailure(code: ENOENT) }
            let parent = slash == directory.startIndex ? "/" : String(directory[..<slash])
            try makeDirectories(parent, mode: ancestorMode, ancestorMode: ancestorMode)
            guard mkdir(directory, mode) == 0 || errno == EEXIST else { throw .current() }
        default:
            throw .current()
        }
    }

    /// Sets a socket send or receive timeout (SO_SNDTIMEO / SO_RCVTIMEO), which also bounds a blocking connect.
    static func setTimeout(_ option: Int32, seconds: Double, on socket: Int32) throws(SystemCallFailure) {
        let wholeSeconds = seconds.rounded(.down)
        // An all-zero timeval means "wait forever", so a sub-microsecond timeout is rounded up to 1 µs.
        var interval = timeval(
            tv_sec: Int(wholeSeconds),
            tv_usec: max(Int((seconds - wholeSeconds) * 1_000_000), wholeSeconds == 0 ? 1 : 0))
        guard setsockopt(socket, SOL_SOCKET, option, &interval, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw .current()
        }
    }

    /// Marks a descriptor close-on-exec so child processes the agent spawns do not inherit it.
    static func setCloseOnExec(_ fileDescriptor: Int32) throws(SystemCallFailure) {
        guard fcntl(fileDescriptor, F_SETFD, FD_CLOEXEC) == 0 else { throw .current() }
    }

    private static func transferAll(
        _ bytes: [UInt8], using call: (UnsafeRawPointer, Int) -> Int
    ) throws(SystemCallFailure) {
        let failure: SystemCallFailure? = bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let transferred = call(buffer.baseAddress! + offset, buffer.count - offset)
                if transferred < 0 {
                    if errno == EINTR { continue }
                    return .current()
                }
                offset += transferred
            }
            return nil
        }
        if let failure { throw failure }
    }
}
