import CCorosync
import Glibc

/// Cluster facts read from Corosync's configuration map (cmap), so the agent takes them from the
/// running cluster instead of parsing corosync.conf itself.
public enum CorosyncConfig {
    /// - `clusterName`: `totem.cluster_name`.
    /// - `tokenTimeoutMs`: `runtime.config.totem.token`, the effective token timeout after
    ///   `token_coefficient` is applied (what failure detection really uses), else the configured
    ///   `totem.token`; nil if neither is set.
    /// - `nodeID`: `runtime.votequorum.this_node_id` (requires the votequorum provider).
    public static func read() throws(CorosyncError) -> (clusterName: String, tokenTimeoutMs: UInt32?, nodeID: UInt32) {
        var handle = cmap_handle_t()
        try retryingTransient("cmap_initialize") { cmap_initialize(&handle) }
        defer { cmap_finalize(handle) }

        var rawName: UnsafeMutablePointer<CChar>?
        try retryingTransient("cmap_get_string(totem.cluster_name)") {
            cmap_get_string(handle, "totem.cluster_name", &rawName)
        }
        defer { free(rawName) }
        let clusterName = rawName.map { String(cString: $0) } ?? ""

        var token: UInt32 = 0
        let tokenTimeoutMs: UInt32? =
            cmap_get_uint32(handle, "runtime.config.totem.token", &token) == CS_OK
            || cmap_get_uint32(handle, "totem.token", &token) == CS_OK ? token : nil

        var nodeID: UInt32 = 0
        try retryingTransient("cmap_get_uint32(runtime.votequorum.this_node_id)") {
            cmap_get_uint32(handle, "runtime.votequorum.this_node_id", &nodeID)
        }
        return (clusterName, tokenTimeoutMs, nodeID)
    }

    /// Votes a partition needs half of: `quorum.expected_votes` if set, else the number of
    /// nodes in the nodelist (one vote each). Every member reads the same configuration, so
    /// every member computes the same quorum for the same membership.
    public static func expectedVotes() throws(CorosyncError) -> Int {
        var handle = cmap_handle_t()
        try retryingTransient("cmap_initialize") { cmap_initialize(&handle) }
        defer { cmap_finalize(handle) }
        var votes: UInt32 = 0
        if cmap_get_uint32(handle, "quorum.expected_votes", &votes) == CS_OK, votes > 0 { return Int(votes) }
        var iterator = cmap_iter_handle_t()
        try retryingTransient("cmap_iter_init(nodelist.node.)") { cmap_iter_init(handle, "nodelist.node.", &iterator) }
        defer { cmap_iter_finalize(handle, iterator) }
        var nodes = 0
        var key = [CChar](repeating: 0, count: Int(CMAP_KEYNAME_MAXLEN) + 1)
        var length = 0
        var type = cmap_value_types_t(0)
        while cmap_iter_next(handle, iterator, &key, &length, &type) == CS_OK {
            if String(cString: key).hasSuffix(".nodeid") { nodes += 1 }
        }
        return nodes
    }

    /// Each node's first ring address (`nodelist.node.N.ring0_addr`) by node id: where its
    /// hypervisor is reached for live migrations.
    public static func nodeAddresses() throws(CorosyncError) -> [UInt32: String] {
        var handle = cmap_handle_t()
        try retryingTransient("cmap_initialize") { cmap_initialize(&handle) }
        defer { cmap_finalize(handle) }
        var addresses: [UInt32: String] = [:]
        for index in 0..<1024 {
            var nodeID: UInt32 = 0
            guard cmap_get_uint32(handle, "nodelist.node.\(index).nodeid", &nodeID) == CS_OK else { break }
            var raw: UnsafeMutablePointer<CChar>?
            guard cmap_get_string(handle, "nodelist.node.\(index).ring0_addr", &raw) == CS_OK, let text = raw else { continue }
            defer { free(text) }
            addresses[nodeID] = String(cString: UnsafePointer(text))
        }
        return addresses
    }

    /// How long Corosync may deliver nothing while it detects a failure: the effective token
    /// timeout plus consensus (`runtime.config.totem.*`, after `token_coefficient`); nil if unknown.
    public static func detectionMs() throws(CorosyncError) -> Int? {
        var handle = cmap_handle_t()
        try retryingTransient("cmap_initialize") { cmap_initialize(&handle) }
        defer { cmap_finalize(handle) }
        var token: UInt32 = 0
        var consensus: UInt32 = 0
        guard cmap_get_uint32(handle, "runtime.config.totem.token", &token) == CS_OK,
              cmap_get_uint32(handle, "runtime.config.totem.consensus", &consensus) == CS_OK else { return nil }
        return Int(token) + Int(consensus)
    }
}
