import CLibvirt
import Glibc
import Synchronization

/// One connection to a libvirt daemon, with keepalive, and domain operations by guest name.
///
/// libvirt connections are thread-safe, so one connection serves every thread. Every call
/// blocks its thread until the daemon answers (seconds for a migration, up to ~30 s when the
/// daemon is unreachable): call from threads of your own, never from Swift's cooperative pool
/// (see `DedicatedThread`). Errors are read on the failing thread, where libvirt keeps them.
public final class LibvirtConnection: Sendable {
    public let uri: String
    /// nil once closed. Each call takes its own reference (`virConnectRef`) under this lock, so
    /// `close()` never frees the connection under a running call.
    private let handle: Mutex<OpaquePointer?>
    /// Domain event registrations, deregistered by `close()`.
    let eventCallbackIDs = Mutex<[Int32]>([])
    private let watchesClose = Mutex(false)

    /// Opens `uri` (e.g. `qemu:///system`, `qemu+tcp://10.99.0.2/system`) with keepalive every
    /// 5 s and 3 missed answers allowed, so a dead daemon or cut link is noticed in ~20 s.
    public init(uri: String) throws(LibvirtError) {
        try LibvirtEventLoop.start()
        guard let connection = virConnectOpen(uri) else { throw .last("virConnectOpen \(uri)") }
        if virConnectSetKeepAlive(connection, 5, 3) < 0 {
            let error = LibvirtError.last("virConnectSetKeepAlive")
            // A driver inside this process (e.g. `test:///default`) has no link to keep alive.
            guard error.code == Int32(VIR_ERR_NO_SUPPORT.rawValue) else {
                virConnectClose(connection)
                throw error
            }
        }
        self.uri = uri
        self.handle = Mutex(connection)
    }

    /// Calls `handler` on libvirt's event thread when the connection dies on its own (daemon
    /// gone, keepalive timeout, socket error); every later call on it fails. One per connection.
    public func onClose(_ handler: @escaping @Sendable (ConnectionCloseReason) -> Void) throws(LibvirtError) {
        try withConnection { connection throws(LibvirtError) in
            let box = CallbackBox(handler)
            guard virConnectRegisterCloseCallback(connection, connectionClosed, box.retainedPointer, releaseCallbackBox) == 0 else {
                let error = LibvirtError.last("virConnectRegisterCloseCallback")
                releaseCallbackBox(Unmanaged.passUnretained(box).toOpaque())
                throw error
            }
            watchesClose.withLock { $0 = true }
        }
    }

    deinit { close() }

    /// Unregisters every callback and lets go of the connection; later calls fail. Calls still
    /// running keep it open until they return: libvirt closes it with the last reference.
    public func close() {
        guard let connection = handle.withLock({ handle in
            defer { handle = nil }
            return handle
        }) else { return }
        for id in eventCallbackIDs.withLock({ $0 }) { virConnectDomainEventDeregisterAny(connection, id) }
        if watchesClose.withLock({ $0 }) { virConnectUnregisterCloseCallback(connection, connectionClosed) }
        virConnectClose(connection)
    }

    /// Runs `body` with a counted reference to the open connection.
    func withConnection<T>(_ body: (OpaquePointer) throws(LibvirtError) -> T) throws(LibvirtError) -> T {
        guard let connection = handle.withLock({ handle -> OpaquePointer? in
            if let handle { virConnectRef(handle) }
            return handle
        }) else { throw .connectionClosed }
        defer { virConnectClose(connection) }
        return try body(connection)
    }

    /// Runs `body` with the guest called `name`; throws `isNoSuchDomain` when there is none.
    func withDomain<T>(_ name: String, _ body: (OpaquePointer) throws(LibvirtError) -> T) throws(LibvirtError) -> T {
        try withConnection { connection throws(LibvirtError) in
            guard let domain = virDomainLookupByName(connection, name) else { throw .last("virDomainLookupByName \(name)") }
            defer { virDomainFree(domain) }
            return try body(domain)
        }
    }

    // MARK: domain lifecycle

    /// Stores a persistent definition (`virDomainDefineXML`) without starting it.
    public func define(xml: String) throws(LibvirtError) {
        try withConnection { connection throws(LibvirtError) in
            guard let domain = virDomainDefineXML(connection, xml) else { throw .last("virDomainDefineXML") }
            virDomainFree(domain)
        }
    }

    /// Starts a defined guest (`virDomainCreate`).
    public func start(_ name: String) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainCreate(domain) == 0 else { throw .last("virDomainCreate \(name)") }
        }
    }

    /// Starts a transient guest from `xml` (`virDomainCreateXML`): it leaves no definition behind
    /// once it stops. `paused`: QEMU is started but its CPUs are not (`VIR_DOMAIN_START_PAUSED`);
    /// lock-manager leases are taken only when it is resumed.
    public func createTransient(xml: String, paused: Bool = false) throws(LibvirtError) {
        try withConnection { connection throws(LibvirtError) in
            let flags = paused ? UInt32(VIR_DOMAIN_START_PAUSED.rawValue) : 0
            guard let domain = virDomainCreateXML(connection, xml, flags) else { throw .last("virDomainCreateXML") }
            virDomainFree(domain)
        }
    }

    /// Lets a paused guest's CPUs run (`virDomainResume`).
    public func resume(_ name: String) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainResume(domain) == 0 else { throw .last("virDomainResume \(name)") }
        }
    }

    /// The running guest's custom metadata element in namespace `uri`, or nil when it has none.
    public func metadata(of name: String, uri: String) throws(LibvirtError) -> String? {
        try withDomain(name) { domain throws(LibvirtError) in
            guard let text = virDomainGetMetadata(domain, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), uri,
                                                  UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) else {
                let error = LibvirtError.last("virDomainGetMetadata \(name)")
                if error.code == Int32(VIR_ERR_NO_DOMAIN_METADATA.rawValue) { return nil }
                throw error
            }
            defer { free(text) }
            return String(cString: text)
        }
    }

    /// Removes the running guest's custom metadata element in namespace `uri`.
    public func removeMetadata(of name: String, uri: String) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainSetMetadata(domain, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), nil, nil, uri,
                                       UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue)) == 0 else {
                throw .last("virDomainSetMetadata \(name)")
            }
        }
    }

    /// Kills the guest's QEMU process at once (`virDomainDestroy`).
    public func destroy(_ name: String) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainDestroy(domain) == 0 else { throw .last("virDomainDestroy \(name)") }
        }
    }

    /// Removes a persistent definition (`virDomainUndefine`); a running guest turns transient.
    public func undefine(_ name: String) throws(LibvirtError) {
        try withDomain(name) { domain throws(LibvirtError) in
            guard virDomainUndefine(domain) == 0 else { throw .last("virDomainUndefine \(name)") }
        }
    }

    // MARK: inspection

    /// The guest called `name`, or nil when the daemon knows none.
    public func domain(named name: String) throws(LibvirtError) -> DomainSummary? {
        do {
            return try withDomain(name) { domain throws(LibvirtError) in try Self.summary(of: domain) }
        } catch where error.isNoSuchDomain {
            return nil
        }
    }

    /// Every guest the daemon knows, running or only defined (`virConnectListAllDomains`).
    /// A guest that vanishes while the list is read is left out.
    public func allDomains() throws(LibvirtError) -> [DomainSummary] {
        try withConnection { connection throws(LibvirtError) in
            var list: UnsafeMutablePointer<OpaquePointer?>?
            let count = virConnectListAllDomains(connection, &list, 0)
            guard count >= 0, let list else { throw .last("virConnectListAllDomains") }
            defer {
                for domain in UnsafeBufferPointer(start: list, count: Int(count)) { virDomainFree(domain) }
                free(list)
            }
            return UnsafeBufferPointer(start: list, count: Int(count)).compactMap { domain in
                domain.flatMap { try? Self.summary(of: $0) }
            }
        }
    }

    private static func summary(of domain: OpaquePointer) throws(LibvirtError) -> DomainSummary {
        guard let name = virDomainGetName(domain) else { throw .last("virDomainGetName") }
        var uuid = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        guard virDomainGetUUIDString(domain, &uuid) == 0 else { throw .last("virDomainGetUUIDString") }
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(domain, &state, &reason, 0) == 0 else { throw .last("virDomainGetState") }
        let active = virDomainIsActive(domain)
        let persistent = virDomainIsPersistent(domain)
        guard active >= 0, persistent >= 0 else { throw .last("virDomainIsActive") }
        let uuidText = String(decoding: uuid.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
        return DomainSummary(name: String(cString: name), uuid: uuidText, state: DomainState(state),
                             isActive: active == 1, isPersistent: persistent == 1)
    }
}

/// libvirt's close callback: tells the handler boxed at registration why the connection died.
private func connectionClosed(_ connection: OpaquePointer?, _ reason: Int32, _ opaque: UnsafeMutableRawPointer?) {
    CallbackBox<ConnectionCloseReason>.from(opaque)?.handler(ConnectionCloseReason(reason))
}
