/// A Swift handler passed to libvirt as a C callback's opaque pointer. libvirt holds one retained
/// reference and gives it back through `releaseCallbackBox` when the callback is unregistered.
final class CallbackBox<Argument>: Sendable {
    let handler: @Sendable (Argument) -> Void

    init(_ handler: @escaping @Sendable (Argument) -> Void) {
        self.handler = handler
    }

    /// A +1 reference for libvirt to keep.
    var retainedPointer: UnsafeMutableRawPointer { Unmanaged.passRetained(self).toOpaque() }

    /// The box behind an opaque pointer libvirt hands back to a callback.
    static func from(_ opaque: UnsafeMutableRawPointer?) -> CallbackBox? {
        opaque.map { Unmanaged<CallbackBox>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// libvirt's `virFreeCallback` for every box: drops the reference `retainedPointer` gave it.
func releaseCallbackBox(_ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    Unmanaged<AnyObject>.fromOpaque(opaque).release()
}
