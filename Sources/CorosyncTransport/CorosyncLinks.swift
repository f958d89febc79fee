import CCorosync
import Glibc

/// Corosync's per-peer link heartbeat, read from its statistics map: knet pings every peer on
/// every link several times per token timeout and marks a link down within about a token
/// timeout of silence (at once when the peer's port refuses), while the membership change waits
/// for the token timeout plus consensus. So a dead peer shows here seconds before it leaves
/// the membership. One open statistics-map connection; calls block while Corosync is stopped,
/// so poll from a thread of its own.
public final class CorosyncLinks {
    private var handle = cmap_handle_t()

    public init() throws(CorosyncError) {
        var handle = cmap_handle_t()
        try retryingTransient("cmap_initialize_map(stats)") { cmap_initialize_map(&handle, CMAP_MAP_STATS) }
        self.handle = handle
    }

    deinit { cmap_finalize(handle) }

    /// Node ids that have knet links of which none is connected (`stats.knet.nodeN.linkL.connected`).
    /// Empty on other transports, which keep no such statistics.
    public func unreachable() throws(CorosyncError) -> [UInt32] {
        var iterator = cmap_iter_handle_t()
        try CorosyncError.check(cmap_iter_init(handle, "stats.knet.node", &iterator), "cmap_iter_init(stats.knet.node)")
        defer { cmap_iter_finalize(handle, iterator) }
        var connected: [UInt32: Bool] = [:]
        var key = [CChar](repeating: 0, count: Int(CMAP_KEYNAME_MAXLEN) + 1)
        var length = 0
        var type = cmap_value_types_t(0)
        while cmap_iter_next(handle, iterator, &key, &length, &type) == CS_OK {
            let name = String(cString: key)
            guard name.hasSuffix(".connected"), let node = Self.nodeID(in: name) else { continue }
            var value: UInt8 = 0
            guard cmap_get_uint8(handle, name, &value) == CS_OK else { continue }
            connected[node] = (connected[node] ?? false) || value != 0
        }
        return connected.filter { !$0.value }.map(\.key).sorted()
    }

    /// "stats.knet.node3.link0.connected" → 3.
    static func nodeID(in key: String) -> UInt32? {
        let parts = key.split(separator: ".")
        guard parts.count == 5, parts[2].hasPrefix("node") else { return nil }
        return UInt32(parts[2].dropFirst(4))
    }
}
