/// Bounded polling instead of sleeping for a guessed time: checks `condition` at once and
/// then every `poll` until it holds (true) or `timeout` has passed (false). A test that waits
/// for something to happen waits with this and fails on false; a plain sleep remains only
/// where time must pass to show that something does *not* happen (commented where used).
func waitUntil(timeout: Duration, poll: Duration = .milliseconds(50), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline || Task.isCancelled { return false }
        try? await Task.sleep(for: poll)
    }
}
