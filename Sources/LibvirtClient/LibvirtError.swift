import CLibvirt

/// A libvirt failure as libvirt reported it, read on the thread that failed.
public struct LibvirtError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libvirt's `virErrorNumber`, e.g. `VIR_ERR_NO_DOMAIN`.
    public var code: Int32
    /// libvirt's `virErrorDomain`: the part of libvirt that failed (not a guest).
    public var domain: Int32
    public var message: String
    public var description: String { "libvirt error \(code) (domain \(domain)): \(message)" }

    init(code: Int32, domain: Int32, message: String) {
        self.code = code
        self.domain = domain
        self.message = message
    }

    /// The calling thread's last libvirt error. libvirt keeps one per thread, so this must run
    /// on the thread whose call failed, right after it; `operation` names the call in case
    /// libvirt recorded nothing.
    static func last(_ operation: String) -> LibvirtError {
        guard let error = virGetLastError() else {
            return LibvirtError(code: Int32(VIR_ERR_INTERNAL_ERROR.rawValue), domain: Int32(VIR_FROM_NONE.rawValue),
                                message: "\(operation) failed without a libvirt error")
        }
        let result = LibvirtError(code: error.pointee.code, domain: error.pointee.domain,
                                  message: error.pointee.message.map { String(cString: $0) } ?? "\(operation) failed")
        virResetLastError()
        return result
    }

    /// A call on a connection after `close()`.
    static let connectionClosed = LibvirtError(code: Int32(VIR_ERR_INVALID_CONN.rawValue), domain: Int32(VIR_FROM_NONE.rawValue),
                                               message: "the libvirt connection is closed")

    /// No guest of that name exists on the host.
    public var isNoSuchDomain: Bool { code == Int32(VIR_ERR_NO_DOMAIN.rawValue) }

    /// The request does not fit the guest's state, e.g. destroying a guest that is not running
    /// or aborting a job when none runs.
    public var isInvalidForState: Bool { code == Int32(VIR_ERR_OPERATION_INVALID.rawValue) }
}
