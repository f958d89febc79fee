import CLibvirt
import Foundation

/// libvirt's process-wide set-up, once: the default event loop and a silent error handler.
/// Keepalive, close callbacks and domain events only work once an event implementation is
/// registered before the first connection opens, and something must drive it: a thread of its
/// own, forever, so callbacks never wait for a caller. Errors reach callers as `LibvirtError`;
/// libvirt's default handler would also print every one of them to stderr.
enum LibvirtEventLoop {
    private static let started: Result<Void, LibvirtError> = {
        virSetErrorFunc(nil, ignoreError)
        guard virEventRegisterDefaultImpl() == 0 else { return .failure(.last("virEventRegisterDefaultImpl")) }
        let thread = Thread {
            while true { _ = virEventRunDefaultImpl() }
        }
        thread.name = "libvirt-events"
        thread.start()
        return .success(())
    }()

    /// Registers and starts the loop on first use; later calls only repeat the first outcome.
    static func start() throws(LibvirtError) {
        try started.get()
    }
}

private func ignoreError(_ context: UnsafeMutableRawPointer?, _ error: virErrorPtr?) {}
