import CorralAgent
import CorralTestbed
import Foundation
import Testing

/// Bringing real clusters up and down for a test (the one driver is CorralTestbed.LocalCluster).
/// A cluster is always torn down, also when the test fails or throws.
enum ClusterTesting {
    /// Real clusters need root (namespaces, mounts) and a built corrald.
    static var canRun: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: LocalCluster.binaries + "/corrald")
    }

    /// Libvirt clusters also need libvirtd, virsh and QEMU.
    static var canRunLibvirt: Bool {
        canRun && ["/usr/sbin/libvirtd", "/usr/sbin/virtlockd", "/usr/bin/virsh", "/usr/bin/qemu-system-x86_64"]
            .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Extra environment for every libvirt node start. libvirt 9.0 with `lock_manager = "lockd"`
    /// (Deploy/local-cluster) connects to virtlockd in the child it forks to exec QEMU; that
    /// child allocates through GLib's slice allocator, whose lock another libvirtd thread may
    /// hold at the fork when several guests start at once (a failover), and the child then
    /// hangs forever in a futex, the guest stays `starting` and `virsh list` hangs (seen here:
    /// three recoveries onto one node). GLib 2.74's `G_SLICE=always-malloc` makes it plain
    /// malloc, which is fork-safe. Inherited by libvirtd through `local-cluster up/start`.
    static let libvirtEnvironment = ["G_SLICE": "always-malloc"]

    /// Brings a fresh cluster up (tearing down a stale one of the same id first), runs `body`,
    /// and tears the cluster down whatever happens; on failure the nodes' logs are kept.
    /// `agentArguments` are passed to every corrald that `up` starts (Deploy/local-cluster's
    /// CORRALD_ARGS).
    static func withCluster(id: Int, base: String, nodes: Int, hypervisor: LocalCluster.Hypervisor = .none,
                            token: Int = 1000, agentArguments: String? = nil,
                            _ body: (LocalCluster) throws -> Void) throws {
        func bringUp() throws(ClusterError) -> LocalCluster {
            if agentArguments != nil || hypervisor == .libvirt {
                return try up(id: id, base: base, nodes: nodes, hypervisor: hypervisor, token: token, agentArguments: agentArguments)
            }
            return try LocalCluster.up(id: id, base: base, nodes: nodes, hypervisor: hypervisor, token: token)
        }
        let cluster: LocalCluster
        do {
            cluster = try bringUp()
        } catch {
            // `up` races with other clusters of this machine coming and going (it unmounts every
            // namespace file it finds, and one may vanish in between): one more try.
            FileHandle.standardOutput.write(Data("cluster \(id): up failed, retrying once: \(error)\n".utf8))
            cluster = try bringUp()
        }
        defer { cluster.down() }
        do {
            try body(cluster)
        } catch {
            let kept = keepLogs(cluster)
            throw ClusterError("\(error) [node logs kept in \(kept)]")
        }
    }

    /// `Deploy/local-cluster ARGS…` for `cluster`, as `LocalCluster.script` runs it, plus `environment`.
    @discardableResult
    static func script(_ cluster: LocalCluster, _ arguments: [String], environment: [String: String] = [:]) -> (status: Int32, output: String) {
        let result = CommandRunner.run([LocalCluster.script] + arguments, environment: environment.merging([
            "CORRAL_BIN": LocalCluster.binaries, "CORRAL_CLUSTER_DIR": cluster.base, "CORRAL_CLUSTER_ID": "\(cluster.id)",
        ]) { $1 })
        return (result.status, result.output)
    }

    /// `LocalCluster.up` with extra corrald arguments and, for libvirt, `libvirtEnvironment`
    /// (it has no parameter for either).
    private static func up(id: Int, base: String, nodes: Int, hypervisor: LocalCluster.Hypervisor, token: Int,
                           agentArguments: String?) throws(ClusterError) -> LocalCluster {
        let cluster = LocalCluster(id: id, base: base, nodes: nodes)
        cluster.down()
        var environment = hypervisor == .libvirt ? libvirtEnvironment : [:]
        if let agentArguments { environment["CORRALD_ARGS"] = agentArguments }
        let result = script(cluster, ["up", "--nodes", "\(nodes)", "--token", "\(token)", "--hypervisor", hypervisor.rawValue],
                            environment: environment)
        guard result.status == 0 else {
            cluster.down()
            throw ClusterError("local-cluster up failed: \(result.output.suffix(2000))")
        }
        do {
            try cluster.waitUntil("every agent answers and is quorate", seconds: 60) {
                (1...nodes).allSatisfy { cluster.status($0)?.quorate == true }
            }
        } catch {
            cluster.down()
            throw error
        }
        return cluster
    }

    /// Copies every node's logs (corrald, corosync, watchdog, libvirtd, guests) out of the
    /// cluster's directory, which `down` removes; returns where they went.
    static func keepLogs(_ cluster: LocalCluster) -> String {
        let stamp = Int(Date().timeIntervalSince1970)
        let target = "/tmp/corral-test-logs/cluster\(cluster.id)-\(stamp)"
        let fm = FileManager.default
        for i in 1...cluster.nodes {
            let from = "\(cluster.base)/n\(i)"
            let to = "\(target)/n\(i)"
            try? fm.createDirectory(atPath: to, withIntermediateDirectories: true)
            for name in (try? fm.contentsOfDirectory(atPath: from)) ?? [] where name.hasSuffix(".log") {
                try? fm.copyItem(atPath: "\(from)/\(name)", toPath: "\(to)/\(name)")
            }
            if let guests = try? fm.contentsOfDirectory(atPath: "\(from)/libvirt/log/qemu") {
                for name in guests { try? fm.copyItem(atPath: "\(from)/libvirt/log/qemu/\(name)", toPath: "\(to)/qemu-\(name)") }
            }
        }
        return target
    }
}
