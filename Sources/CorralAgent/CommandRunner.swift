import Glibc

/// Runs a program to completion and collects its output: posix_spawn plus waitpid, so it
/// works from any thread and never depends on a run loop or SIGCHLD handling. Safe from many
/// threads at once:
/// - the output channel is close-on-exec from birth (socketpair SOCK_CLOEXEC; Swift's Glibc has
///   no pipe2), so a daemon another thread's program starts at the same moment (corosync or
///   libvirtd left running by `local-cluster start`) cannot inherit the write end and keep
///   this read from ever seeing EOF;
/// - the child starts with an empty signal mask and default dispositions, whatever the calling
///   thread blocks (Dispatch and Swift concurrency threads block almost all signals).
public enum CommandRunner {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `arguments[0]` (an absolute path) with `arguments[1...]`; stdout and stderr merged.
    /// `environment` entries are added to (or replace) the caller's environment.
    public static func run(_ arguments: [String], environment extra: [String: String] = [:]) -> Result {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            return Result(status: 127, output: "socketpair failed: errno \(errno)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        for (k, v) in extra { env[k] = v }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            return Result(status: 127, output: "cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { output += buffer[0..<n] } else if n < 0 && errno == EINTR { continue } else { break }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitCode, output: String(decoding: output, as: UTF8.self))
    }
}
