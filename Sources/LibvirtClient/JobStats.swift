import CLibvirt

/// Statistics of a guest's background job (a migration), from `virDomainGetJobStats` or the
/// job-completed event. Byte counts are bytes; a field libvirt does not report is 0.
public struct JobStats: Sendable, Equatable {
    public enum JobType: Sendable, Equatable {
        case none, bounded, unbounded, completed, failed, cancelled
        case other(Int32)

        init(_ raw: Int32) {
            switch UInt32(bitPattern: raw) {
            case VIR_DOMAIN_JOB_NONE.rawValue: self = .none
            case VIR_DOMAIN_JOB_BOUNDED.rawValue: self = .bounded
            case VIR_DOMAIN_JOB_UNBOUNDED.rawValue: self = .unbounded
            case VIR_DOMAIN_JOB_COMPLETED.rawValue: self = .completed
            case VIR_DOMAIN_JOB_FAILED.rawValue: self = .failed
            case VIR_DOMAIN_JOB_CANCELLED.rawValue: self = .cancelled
            default: self = .other(raw)
            }
        }

        /// A job is still running (a migration in flight).
        public var isRunning: Bool { self == .bounded || self == .unbounded }
    }

    public var type: JobType
    public var timeElapsedMs: UInt64
    /// Memory plus storage to copy, copied so far and left.
    public var dataTotal: UInt64
    public var dataProcessed: UInt64
    public var dataRemaining: UInt64
    public var memoryTotal: UInt64
    public var memoryProcessed: UInt64
    public var memoryRemaining: UInt64
    /// Memory transfer rate, bytes per second.
    public var memoryBps: UInt64
    /// Pages the guest dirties per second (multiply by `memoryPageSize` for bytes).
    public var memoryDirtyRate: UInt64
    public var memoryPageSize: UInt64
    /// How long the guest was paused at switchover; only in completed stats.
    public var downtimeMs: UInt64
    public var setupTimeMs: UInt64
    /// Pre-copy passes over memory so far.
    public var iteration: UInt64

    /// Bytes the guest dirties per second.
    public var memoryDirtyBytesPerSecond: UInt64 { memoryDirtyRate * memoryPageSize }

    /// Reads the fields out of a typed-parameter array that libvirt owns.
    init(type: JobType, parameters: UnsafeMutablePointer<virTypedParameter>?, count: Int32) {
        func value(_ key: String) -> UInt64 {
            var result: UInt64 = 0
            return virTypedParamsGetULLong(parameters, count, key, &result) == 1 ? result : 0
        }
        self.type = type
        timeElapsedMs = value(VIR_DOMAIN_JOB_TIME_ELAPSED)
        dataTotal = value(VIR_DOMAIN_JOB_DATA_TOTAL)
        dataProcessed = value(VIR_DOMAIN_JOB_DATA_PROCESSED)
        dataRemaining = value(VIR_DOMAIN_JOB_DATA_REMAINING)
        memoryTotal = value(VIR_DOMAIN_JOB_MEMORY_TOTAL)
        memoryProcessed = value(VIR_DOMAIN_JOB_MEMORY_PROCESSED)
        memoryRemaining = value(VIR_DOMAIN_JOB_MEMORY_REMAINING)
        memoryBps = value(VIR_DOMAIN_JOB_MEMORY_BPS)
        memoryDirtyRate = value(VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE)
        memoryPageSize = value(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE)
        downtimeMs = value(VIR_DOMAIN_JOB_DOWNTIME)
        setupTimeMs = value(VIR_DOMAIN_JOB_SETUP_TIME)
        iteration = value(VIR_DOMAIN_JOB_MEMORY_ITERATION)
    }
}
