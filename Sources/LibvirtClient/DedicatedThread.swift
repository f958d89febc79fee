import Foundation

/// Runs blocking libvirt work on a thread of its own and awaits the result. A libvirt call can
/// block for seconds (a migration) or ~30 s (a dead peer); parked on Swift's cooperative pool it
/// would starve unrelated tasks, so async code hands it to a fresh thread instead.
public enum DedicatedThread {
    public static func run<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: Result { () throws(E) -> T in try work() })
            }.start()
        }
        return try result.get()
    }
}
