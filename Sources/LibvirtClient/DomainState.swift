import CLibvirt

/// A guest's run state as libvirt reports it (`virDomainState`).
public enum DomainState: Sendable, Equatable {
    case noState, running, blocked, paused, shuttingDown, shutOff, crashed, pmSuspended
    case other(Int32)

    init(_ raw: Int32) {
        switch UInt32(bitPattern: raw) {
        case VIR_DOMAIN_NOSTATE.rawValue: self = .noState
        case VIR_DOMAIN_RUNNING.rawValue: self = .running
        case VIR_DOMAIN_BLOCKED.rawValue: self = .blocked
        case VIR_DOMAIN_PAUSED.rawValue: self = .paused
        case VIR_DOMAIN_SHUTDOWN.rawValue: self = .shuttingDown
        case VIR_DOMAIN_SHUTOFF.rawValue: self = .shutOff
        case VIR_DOMAIN_CRASHED.rawValue: self = .crashed
        case VIR_DOMAIN_PMSUSPENDED.rawValue: self = .pmSuspended
        default: self = .other(raw)
        }
    }
}
