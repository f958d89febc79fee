import CLibvirt

/// A guest changed run state (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`): what happened and why.
public struct DomainLifecycleEvent: Sendable, Equatable {
    public var domain: String
    public var change: Change

    public enum Change: Sendable, Equatable {
        case defined
        case undefined
        case started(Started)
        case suspended(Suspended)
        case resumed(Resumed)
        case stopped(Stopped)
        /// The guest began shutting down; `.stopped(.shutdown)` follows when it is off.
        case shutdown
        case pmSuspended
        /// The guest panicked; unless configured to stay, `.stopped(.crashed)` follows.
        case crashed
        case other(event: Int32, detail: Int32)
    }

    public enum Started: Sendable, Equatable {
        case booted
        /// An incoming migration began here; the guest runs here only from `.resumed(.migrated)`.
        case migrated
        case restored, fromSnapshot, wakeup
        case other(Int32)
    }

    public enum Suspended: Sendable, Equatable {
        case paused
        /// Paused on the source for the final copy (switchover).
        case migrated
        case ioError, watchdog, restored, fromSnapshot, apiError, postcopy, postcopyFailed
        case other(Int32)
    }

    public enum Resumed: Sendable, Equatable {
        case unpaused
        /// Running on the destination after switchover (or again on the source after a failure).
        case migrated
        case fromSnapshot
        /// Running on the destination while post-copy still pulls memory from the source.
        case postcopy
        case postcopyFailed
        case other(Int32)
    }

    public enum Stopped: Sendable, Equatable {
        /// The guest powered off.
        case shutdown
        /// Someone called destroy.
        case destroyed
        case crashed
        /// Left for another host by migration.
        case migrated
        case saved
        /// QEMU died or the host side failed (e.g. a killed QEMU process).
        case failed
        case fromSnapshot
        case other(Int32)
    }

    public init(domain: String, change: Change) {
        self.domain = domain
        self.change = change
    }

    init(domain: String, event: Int32, detail: Int32) {
        self.domain = domain
        let d = UInt32(bitPattern: detail)
        switch UInt32(bitPattern: event) {
        case VIR_DOMAIN_EVENT_DEFINED.rawValue: change = .defined
        case VIR_DOMAIN_EVENT_UNDEFINED.rawValue: change = .undefined
        case VIR_DOMAIN_EVENT_STARTED.rawValue:
            switch d {
            case VIR_DOMAIN_EVENT_STARTED_BOOTED.rawValue: change = .started(.booted)
            case VIR_DOMAIN_EVENT_STARTED_MIGRATED.rawValue: change = .started(.migrated)
            case VIR_DOMAIN_EVENT_STARTED_RESTORED.rawValue: change = .started(.restored)
            case VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT.rawValue: change = .started(.fromSnapshot)
            case VIR_DOMAIN_EVENT_STARTED_WAKEUP.rawValue: change = .started(.wakeup)
            default: change = .started(.other(detail))
            }
        case VIR_DOMAIN_EVENT_SUSPENDED.rawValue:
            switch d {
            case VIR_DOMAIN_EVENT_SUSPENDED_PAUSED.rawValue: change = .suspended(.paused)
            case VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED.rawValue: change = .suspended(.migrated)
            case VIR_DOMAIN_EVENT_SUSPENDED_IOERROR.rawValue: change = .suspended(.ioError)
            case VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG.rawValue: change = .suspended(.watchdog)
            case VIR_DOMAIN_EVENT_SUSPENDED_RESTORED.rawValue: change = .suspended(.restored)
            case VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT.rawValue: change = .suspended(.fromSnapshot)
            case VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR.rawValue: change = .suspended(.apiError)
            case VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY.rawValue: change = .suspended(.postcopy)
            case VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED.rawValue: change = .suspended(.postcopyFailed)
            default: change = .suspended(.other(detail))
            }
        case VIR_DOMAIN_EVENT_RESUMED.rawValue:
            switch d {
            case VIR_DOMAIN_EVENT_RESUMED_UNPAUSED.rawValue: change = .resumed(.unpaused)
            case VIR_DOMAIN_EVENT_RESUMED_MIGRATED.rawValue: change = .resumed(.migrated)
            case VIR_DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT.rawValue: change = .resumed(.fromSnapshot)
            case VIR_DOMAIN_EVENT_RESUMED_POSTCOPY.rawValue: change = .resumed(.postcopy)
            case VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED.rawValue: change = .resumed(.postcopyFailed)
            default: change = .resumed(.other(detail))
            }
        case VIR_DOMAIN_EVENT_STOPPED.rawValue:
            switch d {
            case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN.rawValue: change = .stopped(.shutdown)
            case VIR_DOMAIN_EVENT_STOPPED_DESTROYED.rawValue: change = .stopped(.destroyed)
            case VIR_DOMAIN_EVENT_STOPPED_CRASHED.rawValue: change = .stopped(.crashed)
            case VIR_DOMAIN_EVENT_STOPPED_MIGRATED.rawValue: change = .stopped(.migrated)
            case VIR_DOMAIN_EVENT_STOPPED_SAVED.rawValue: change = .stopped(.saved)
            case VIR_DOMAIN_EVENT_STOPPED_FAILED.rawValue: change = .stopped(.failed)
            case VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT.rawValue: change = .stopped(.fromSnapshot)
            default: change = .stopped(.other(detail))
            }
        case VIR_DOMAIN_EVENT_SHUTDOWN.rawValue: change = .shutdown
        case VIR_DOMAIN_EVENT_PMSUSPENDED.rawValue: change = .pmSuspended
        case VIR_DOMAIN_EVENT_CRASHED.rawValue: change = .crashed
        default: change = .other(event: event, detail: detail)
        }
    }
}
