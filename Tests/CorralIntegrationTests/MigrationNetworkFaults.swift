import CorralTestbed

/// Network faults aimed at live migrations only, inside one node's network namespace.
///
/// `LocalCluster.shape` caps the whole link, Corosync included, and a migration stream then
/// queues Corosync's packets behind its own. These leave UDP (Corosync/knet) alone and act on
/// TCP only: libvirt's RPC and QEMU's migration stream. This kernel has no loadable modules;
/// of the qdiscs only tbf and htb are built in (no prio, netem), and the u32 classifier.
extension LocalCluster {
    /// Caps node `i`'s outgoing TCP at `rate` (tc syntax, e.g. "200kbit"); UDP stays unshaped.
    /// An idle diskless guest sends well under 1 MiB, so at 200 kbit its migration takes ~20 s.
    func throttleTCP(_ i: Int, _ rate: String) throws(ClusterError) {
        let device = "v\(i)"
        let steps: [[String]] = [
            ["tc", "qdisc", "replace", "dev", device, "root", "handle", "1:", "htb", "default", "20", "r2q", "1"],
            ["tc", "class", "add", "dev", device, "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit"],
            ["tc", "class", "add", "dev", device, "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate, "burst", "15k"],
            ["tc", "filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
             "match", "ip", "protocol", "17", "0xff", "flowid", "1:10"],
        ]
        for step in steps {
            let result = exec(i, step)
            if result.status != 0 {
                unthrottle(i)
                throw ClusterError("node \(i): \(step.joined(separator: " ")) failed: \(result.output)")
            }
        }
    }

    /// Removes `throttleTCP` (and any `shape`) from node `i`'s link.
    func unthrottle(_ i: Int) { shape(i, "off") }

    /// Makes every outgoing migration of node `i` fail at once: QEMU's connections to the
    /// destinations' migration ports (libvirt's 49152–49215) are reset. Corosync and libvirt's
    /// own RPC (16509) pass.
    func blockMigrationStreams(_ i: Int) throws(ClusterError) {
        let steps: [[String]] = [
            ["nft", "add", "table", "inet", "corraltest"],
            ["nft", "add chain inet corraltest out { type filter hook output priority 0; policy accept; }"],
            ["nft", "add", "rule", "inet", "corraltest", "out", "tcp", "dport", "49152-49215", "reject", "with", "tcp", "reset"],
        ]
        for step in steps {
            let result = exec(i, step)
            if result.status != 0 {
                unblockMigrationStreams(i)
                throw ClusterError("node \(i): \(step.joined(separator: " ")) failed: \(result.output)")
            }
        }
    }

    func unblockMigrationStreams(_ i: Int) {
        exec(i, ["nft", "delete", "table", "inet", "corraltest"])
    }
}
