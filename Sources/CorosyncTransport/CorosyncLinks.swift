import CCorosync
import Glibc

/// Corosync's per-peer link heartbeat, read from its statistics map: knet pings every peer on
/// every link several times per token timeout and marks a link down within about a token
/// timeout of silence (at once when the peer's port refuses), while the membership change waits
/// for the token timeout plus consensus. So a dead peer shows here seconds before it leaves
/// the membership. One open statistics-map connection; calls block while Corosync is stopped,
/// so poll from a thread of its own.
///
/// Cheap by design, because Corosync answers at real-time priority: the `…connected` keys are
/// found once by iterating the map (`discover`, about 25 keys per peer and link, one IPC call
/// each), and a poll then reads only those, one call per link. Iterating on every poll cost
/// each Corosync about 10 % of a core at 10 polls a second (measured on a 5-node cluster).
public final class CorosyncLinks {
    private var handle = cmap_handle_t()
    private var keys: [UInt32: [String]] = [:]

    public init() throws(CorosyncError) {
        var handle = cmap_handle_t()
        try retryingTransient("cmap_initialize_map(stats)") { cmap_initialize_map(&handle, CMAP_MAP_STATS) }
        self.handle = handle
        try discover()
    }

    deinit { cmap_finalize(handle) }

    /// Finds every peer's `stats.knet.nodeN.linkL.connected` key (peers and links come and go
    /// with the configuration, so call it again now and then).
    public func discover() throws(CorosyncError) {
        var iterator = cmap_iter_handle_t()
        try CorosyncError.check(cmap_iter_init(handle, "stats.knet.node", &iterator), "cmap_iter_init(stats.knet.node)")
        defer { cmap_iter_finalize(handle, iterator) }
        var found: [UInt32: [String]] = [:]
        var key = [CChar](repeating: 0, count: Int(CMAP_KEYNAME_MAXLEN) + 1)
        var length = 0
        var type = cmap_value_types_t(0)
        while cmap_iter_next(handle, iterator, &key, &length, &type) == CS_OK {
            let name = String(cString: key)
            guard name.hasSuffix(".connected"), let node = Self.nodeID(in: name) else { continue }
            found[node, default: []].append(name)
        }
        keys = found
    }

    /// Node ids with knet links of which none is connected. Empty on other transports, which
    /// keep no such statistics. A key that has gone away counts as not connected until the
    /// next `discover`.
    public func unreachable() throws(CorosyncError) -> [UInt32] {
        var down: [UInt32] = []
        for (node, names) in keys {
            var connected = false
            for name in names {
                var value: UInt8 = 0
                let result = cmap_get_uint8(handle, name, &value)
                if result == CS_OK { connected = connected || value != 0 } else if result != CS_ERR_NOT_EXIST {
                    throw CorosyncError(result, "cmap_get_uint8(\(name))")
                }
            }
            if !connected { down.append(node) }
        }
        return down.sorted()
    }

    /// "stats.knet.node3.link0.connected" → 3.
    static func nodeID(in key: String) -> UInt32? {
        let parts = key.split(separator: ".")
        guard parts.count == 5, parts[2].hasPrefix("node") else { return nil }
        return UInt32(parts[2].dropFirst(4))
    }
}
