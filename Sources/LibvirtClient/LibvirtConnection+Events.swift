import CLibvirt

/// Domain events, delivered on libvirt's event thread (keep handlers short: they hold it up).
/// Subscriptions last until the connection closes.
extension LibvirtConnection {
    /// Calls `handler` for every run-state change of any guest on this daemon.
    public func onLifecycleEvent(_ handler: @escaping @Sendable (DomainLifecycleEvent) -> Void) throws(LibvirtError) {
        try register("lifecycle", CallbackBox(handler)) { connection, opaque in
            corral_register_lifecycle_events(connection, lifecycleEvent, opaque, releaseCallbackBox)
        }
    }

    /// Calls `handler` with a guest's name and the final statistics of a job that just ended
    /// successfully, e.g. an outgoing migration (with its downtime). On the source this is the
    /// only way to get them for a transient guest: it is gone once the migration returns.
    public func onJobCompleted(_ handler: @escaping @Sendable (String, JobStats) -> Void) throws(LibvirtError) {
        try register("job-completed", CallbackBox { (event: (String, JobStats)) in handler(event.0, event.1) }) { connection, opaque in
            corral_register_job_completed_events(connection, jobCompletedEvent, opaque, releaseCallbackBox)
        }
    }

    /// Hands `box` to libvirt through `call`, which returns the callback id (or -1).
    private func register<Argument>(_ what: String, _ box: CallbackBox<Argument>,
                                    _ call: (OpaquePointer, UnsafeMutableRawPointer) -> Int32) throws(LibvirtError) {
        try withConnection { connection throws(LibvirtError) in
            let id = call(connection, box.retainedPointer)
            guard id >= 0 else {
                let error = LibvirtError.last("register \(what) events")
                releaseCallbackBox(Unmanaged.passUnretained(box).toOpaque())
                throw error
            }
            eventCallbackIDs.withLock { $0.append(id) }
        }
    }
}

private func domainName(_ domain: OpaquePointer?) -> String {
    domain.flatMap(virDomainGetName).map { String(cString: $0) } ?? ""
}

private func lifecycleEvent(_ connection: OpaquePointer?, _ domain: OpaquePointer?, _ event: Int32, _ detail: Int32,
                            _ opaque: UnsafeMutableRawPointer?) -> Int32 {
    CallbackBox<DomainLifecycleEvent>.from(opaque)?.handler(DomainLifecycleEvent(domain: domainName(domain), event: event, detail: detail))
    return 0
}

private func jobCompletedEvent(_ connection: OpaquePointer?, _ domain: OpaquePointer?, _ parameters: UnsafeMutablePointer<virTypedParameter>?,
                               _ count: Int32, _ opaque: UnsafeMutableRawPointer?) {
    let stats = JobStats(type: .completed, parameters: parameters, count: count)
    CallbackBox<(String, JobStats)>.from(opaque)?.handler((domainName(domain), stats))
}
