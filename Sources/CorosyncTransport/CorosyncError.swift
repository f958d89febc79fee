import CCorosync

/// A failed Corosync library call: which call failed and the raw `cs_error_t` it returned,
/// so callers can decide between retrying, reconnecting and giving up.
public struct CorosyncError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The raw `cs_error_t` value.
    public let code: Int32
    /// The call that failed, e.g. `cpg_mcast_joined`.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    init(_ error: cs_error_t, _ operation: String) {
        self.init(code: Int32(truncatingIfNeeded: error.rawValue), operation: operation)
    }

    /// Throws unless `result` is `CS_OK`; for local calls that never answer TRY_AGAIN.
    static func check(_ result: cs_error_t, _ operation: String) throws(CorosyncError) {
        guard result == CS_OK else { throw CorosyncError(result, operation) }
    }

    /// True when Corosync refused the call for now without doing anything (it is syncing a
    /// membership change or applying flow control), so the same call may simply be retried.
    public var isTransient: Bool {
        [CS_ERR_TRY_AGAIN, CS_ERR_BUSY, CS_ERR_QUEUE_FULL].contains { code == Int32($0.rawValue) }
    }

    /// The `CS_ERR_…` constant name, because `cs_strerror` text does not name the constant.
    public var name: String {
        switch code {
        case 1: "CS_OK"
        case 2: "CS_ERR_LIBRARY"
        case 3: "CS_ERR_VERSION"
        case 4: "CS_ERR_INIT"
        case 5: "CS_ERR_TIMEOUT"
        case 6: "CS_ERR_TRY_AGAIN"
        case 7: "CS_ERR_INVALID_PARAM"
        case 8: "CS_ERR_NO_MEMORY"
        case 9: "CS_ERR_BAD_HANDLE"
        case 10: "CS_ERR_BUSY"
        case 11: "CS_ERR_ACCESS"
        case 12: "CS_ERR_NOT_EXIST"
        case 13: "CS_ERR_NAME_TOO_LONG"
        case 14: "CS_ERR_EXIST"
        case 15: "CS_ERR_NO_SPACE"
        case 16: "CS_ERR_INTERRUPT"
        case 17: "CS_ERR_NAME_NOT_FOUND"
        case 18: "CS_ERR_NO_RESOURCES"
        case 19: "CS_ERR_NOT_SUPPORTED"
        case 20: "CS_ERR_BAD_OPERATION"
        case 21: "CS_ERR_FAILED_OPERATION"
        case 22: "CS_ERR_MESSAGE_ERROR"
        case 23: "CS_ERR_QUEUE_FULL"
        case 24: "CS_ERR_QUEUE_NOT_AVAILABLE"
        case 25: "CS_ERR_BAD_FLAGS"
        case 26: "CS_ERR_TOO_BIG"
        case 27: "CS_ERR_NO_SECTIONS"
        case 28: "CS_ERR_CONTEXT_NOT_FOUND"
        case 30: "CS_ERR_TOO_MANY_GROUPS"
        case 100: "CS_ERR_SECURITY"
        default: "CS_ERR_UNKNOWN"
        }
    }

    public var description: String { "\(operation) failed: \(name) (\(code))" }
}
