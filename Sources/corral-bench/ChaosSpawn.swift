import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The campaign's own way to run a short program (virsh, nft, qemu-img, sha256sum), safe to
/// use from many threads at once, unlike `CommandRunner`:
/// - its output channel is created close-on-exec atomically (socketpair SOCK_CLOEXEC), so a program another
///   thread spawns at the same moment (e.g. a corosync or libvirtd that `local-cluster start`
///   leaves running) cannot inherit the write end and keep our read from ever seeing EOF;
/// - the child starts with an empty signal mask and default dispositions, whatever the calling
///   thread blocks (Dispatch and Swift concurrency threads block almost all signals).
enum ChaosSpawn {
    struct Result: Sendable {
        var status: Int32
        var output: String
    }

    /// A connected pair of descriptors, close-on-exec from birth (Swift's Glibc has no pipe2).
    static func cloexecPair(_ fds: inout [Int32]) -> Bool {
        socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0
    }

    static func run(_ arguments: [String]) -> Result {
        var fds: [Int32] = [0, 0]
        guard cloexecPair(&fds) else { return Result(status: 127, output: "socketpair failed: errno \(errno)") }
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
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
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
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, output: String(decoding: output, as: UTF8.self))
    }
}
