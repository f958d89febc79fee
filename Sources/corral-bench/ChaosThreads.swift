import Foundation

/// Threads for everything that spawns programs. `CommandRunner` (posix_spawn) passes the calling
/// thread's signal mask on, and Dispatch worker threads block almost every signal: a corosync,
/// libvirtd or corrald started from one would run with SIGTERM, SIGCHLD etc. blocked (a libvirtd
/// started that way stopped answering; `timeout` could not stop a virsh). So the campaign never
/// spawns from Dispatch: these threads clear their signal mask first.
enum ChaosThreads {
    /// Clears the calling thread's signal mask.
    static func unblockSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
    }

    /// Runs `body` on a new thread with no blocked signal; `group` (if any) is left when it ends.
    static func spawn(_ name: String, group: DispatchGroup? = nil, _ body: @escaping @Sendable () -> Void) {
        group?.enter()
        let thread = Thread {
            unblockSignals()
            body()
            group?.leave()
        }
        thread.name = name
        thread.start()
    }

    /// Runs `body(0..<count)` on `count` such threads at once and waits for all of them.
    static func parallel(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard count > 0 else { return }
        let group = DispatchGroup()
        for k in 0..<count { spawn("chaos-worker", group: group) { body(k) } }
        group.wait()
    }
}
