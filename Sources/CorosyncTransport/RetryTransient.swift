import CCorosync
import Glibc

/// Calls `call` until it stops returning a transient error, sleeping 1, 2, 4 … 256 ms between
/// attempts and giving up after about 2 s. Corosync answers `CS_ERR_TRY_AGAIN` while it syncs a
/// membership change or while flow control is on; both normally clear within a token timeout.
/// Blocks the calling thread while it waits.
func retryingTransient(_ operation: String, _ call: () -> cs_error_t) throws(CorosyncError) {
    let budgetMs: UInt32 = 2000
    var delayMs: UInt32 = 1
    var waitedMs: UInt32 = 0
    while true {
        let result = call()
        if result == CS_OK { return }
        let error = CorosyncError(result, operation)
        guard error.isTransient, waitedMs < budgetMs else { throw error }
        usleep(delayMs * 1000)
        waitedMs += delayMs
        delayMs = min(delayMs * 2, 256)
    }
}
