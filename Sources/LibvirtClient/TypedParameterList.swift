import CLibvirt

/// A typed-parameter array built with `virTypedParamsAdd*`, as libvirt's `…3` calls take them;
/// freed with the list.
final class TypedParameterList {
    private(set) var parameters: UnsafeMutablePointer<virTypedParameter>?
    private(set) var count: Int32 = 0
    private var capacity: Int32 = 0

    deinit { virTypedParamsFree(parameters, count) }

    func add(_ key: String, _ value: UInt64) throws(LibvirtError) {
        guard virTypedParamsAddULLong(&parameters, &count, &capacity, key, value) == 0 else { throw .last("virTypedParamsAddULLong \(key)") }
    }

    func add(_ key: String, _ value: String) throws(LibvirtError) {
        guard virTypedParamsAddString(&parameters, &count, &capacity, key, value) == 0 else { throw .last("virTypedParamsAddString \(key)") }
    }
}
