import CLibvirt

/// Why libvirt closed a connection on its own (`virConnectCloseReason`).
public enum ConnectionCloseReason: Sendable, Equatable {
    /// A socket or protocol error.
    case error
    /// The daemon closed the socket, e.g. it exited.
    case endOfFile
    /// The daemon stopped answering keepalive probes (dead host or cut link).
    case keepaliveTimeout
    /// This process closed it.
    case client
    case other(Int32)

    init(_ raw: Int32) {
        switch UInt32(bitPattern: raw) {
        case VIR_CONNECT_CLOSE_REASON_ERROR.rawValue: self = .error
        case VIR_CONNECT_CLOSE_REASON_EOF.rawValue: self = .endOfFile
        case VIR_CONNECT_CLOSE_REASON_KEEPALIVE.rawValue: self = .keepaliveTimeout
        case VIR_CONNECT_CLOSE_REASON_CLIENT.rawValue: self = .client
        default: self = .other(raw)
        }
    }
}
