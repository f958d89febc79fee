import CorralCore
import Glibc

/// The agent's clock: CLOCK_BOOTTIME in milliseconds. Monotonic, and shared by every process
/// on the host, so a lease deadline written by one run of the agent (or read by the test
/// watchdog from /proc/uptime) means the same instant to the next.
public enum BootClock {
    public static func now() -> Millis {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Millis(spec.tv_sec) * 1000 + Millis(spec.tv_nsec) / 1_000_000
    }
}
