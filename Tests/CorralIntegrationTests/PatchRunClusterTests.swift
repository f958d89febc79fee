import CorralAgent
import CorralCore
import CorralTestbed
import Foundation
import Testing

/// Cluster-aware patching runs (Docs/patching.md) on a real 3-node libvirt cluster with real
/// guests: a hook that reboots its node (`local-cluster reboot`, the coordinator first: the
/// self-updating mode), the run's driver crashing mid-run, a hook failing on one node, and
/// `--what-if`, pre and post hooks, and an abort. Every poll checks that no VM runs on two nodes at once and that every VM is
/// listed (running, or paused at a switch-over) on some node: no VM is ever stopped.
///
/// Cluster id 7, base /run/corral-test-patch: one scenario on one cluster (a libvirt cluster
/// costs ~15 s to start), torn down whatever happens.
@Suite(.serialized, .enabled(if: ClusterTesting.canRunLibvirt, "needs root, a built corrald, libvirt and QEMU"))
struct PatchRunClusterTests {
    static let clusterID = 7
    static let base = "/run/corral-test-patch"
    static let guests = ["alpha", "bravo", "charlie"]

    /// Waits until patch run `run` has ended, checking at every poll that each guest is listed
    /// on some node's libvirtd; returns the run as the cluster records it.
    static func waitForRun(_ watch: ClusterWatch, _ run: Int, seconds: Double, statusFrom nodes: [Int]? = nil) throws -> PatchRun {
        var missing: [String] = []
        let o = try watch.waitUntil("patch run \(run) ended", seconds: seconds, statusFrom: nodes) { o in
            for vm in guests where o.guests.nodesListing(vm).isEmpty && o.guests.nodes.count == 3 {
                missing.append("\(vm) listed nowhere: \(o.guests)")
            }
            guard let patch = o.status?.patchRun, patch.id == run else { return false }
            return patch.state != .running
        }
        #expect(missing.isEmpty, "a VM was stopped during the patch run: \(missing.prefix(3))")
        return o.status!.patchRun!
    }

    static func steps(_ run: PatchRun) -> [String] { run.nodes.map { "node\($0.node):\($0.step.rawValue)" } }

    @Test func patchRunsOnRealGuests() throws {
        try LibvirtClusterTests.withLibvirtCluster(id: Self.clusterID, base: Self.base, "patch") { cluster, watch in
            try watch.step("1. three guests, one per node") {
                for (vm, node) in zip(Self.guests, ["node1", "node2", "node3"]) {
                    let r = watch.corral(1, ["vm", "add", vm, "--memory", "64", "--preferred", node, "--wait", "--timeout", "60"])
                    #expect(r.status == 0, "vm add \(vm): \(r.output)")
                }
                try watch.waitUntilConsistent("3 VMs placed")
            }

            try watch.step("2. --what-if prints the plan and changes nothing; bad input is refused") {
                let before = try #require(cluster.status(1))
                let plan = watch.corral(1, ["patch", "run", "--hook", "true", "--what-if"])
                #expect(plan.status == 0 && plan.output.contains("would patch 3 node(s) in this order: node1, node2, node3"), "\(plan.output)")
                let after = try #require(cluster.status(1))
                #expect(after.digest == before.digest && after.patchRun == nil, "what-if changed the state")
                let unknown = watch.corral(1, ["patch", "run", "--hook", "true", "--order", "node1,node9"])
                #expect(unknown.status == 1 && unknown.output.contains("no node named node9 in --order"), "\(unknown.output)")
                let duration = watch.corral(1, ["patch", "run", "--hook", "true", "--reboot-timeout", "soon"])
                #expect(duration.status == 2 && duration.output.contains("--reboot-timeout takes a duration"), "\(duration.output)")
                #expect(try #require(cluster.status(1)).digest == before.digest)
            }

            try watch.step("3. a hook that reboots its node: every node rebooted in turn (node1, the coordinator, first), no VM stopped") {
                let hook = "\(LocalCluster.script) reboot ${CORRAL_PATCH_NODE#node}"
                let r = watch.corral(2, ["patch", "run", "--hook", hook, "--reboot-timeout", "3m"])
                #expect(r.status == 0, "patch run: \(r.output)")
                let second = watch.corral(2, ["patch", "run", "--hook", "true"])
                #expect(second.status == 1 && second.output.contains("patch run 1 is running"), "one run at a time: \(second.output)")
                let run = try Self.waitForRun(watch, 1, seconds: 480)
                #expect(run.state == .finished, "run 1: \(run.outcome) \(Self.steps(run))")
                #expect(Self.steps(run) == ["node1:done", "node2:done", "node3:done"])
                for progress in run.nodes {
                    #expect(progress.moved.count == 1 && progress.returned.map(\.vm) == progress.moved.map(\.vm),
                            "node\(progress.node) moved \(progress.moved), brought back \(progress.returned)")
                    #expect(progress.moved.allSatisfy { $0.downtimeMs > 0 }, "libvirt's downtime of each live migration: \(progress.moved)")
                    #expect(progress.timeline.contains { $0.step == .resuming }, "node\(progress.node): \(progress.timeline)")
                    #expect(progress.hooks.isEmpty, "a rebooting hook's answer dies with its node: \(progress.hooks)")
                    let log = (try? String(contentsOfFile: "\(Self.base)/n\(progress.node)/reboot.log", encoding: .utf8)) ?? ""
                    #expect(log.contains("powered on again"), "node\(progress.node) was rebooted: \(log.suffix(300))")
                }
                let o = try watch.waitUntilConsistent("every VM back home after failback")
                for (vm, node) in zip(Self.guests, [1, 2, 3]) { #expect(o.guests.nodesListing(vm) == [node], "\(vm): \(o.guests)") }
                let report = watch.corral(3, ["patch", "report", "--json"])
                #expect(report.status == 0 && report.output.contains("\"totalDowntimeMs\""), "\(report.output)")
            }

            try watch.step("4. the run's driver (the coordinator, node1, being patched) crashes mid-hook: node2 drives, node1 comes back, the run finishes") {
                let r = watch.corral(3, ["patch", "run", "--hook", "sleep 12", "--order", "node1,node2,node3"])
                #expect(r.status == 0, "patch run: \(r.output)")
                try watch.waitUntil("node1's hook runs", seconds: 120) { o in
                    o.status?.patchRun?.nodes[0].step == .hook && o.status?.patchRun?.nodes[0].hookStarted == true
                }
                #expect(try #require(cluster.status(2)).coordinator == "node1")
                cluster.crash(1)
                watch.note("  crashed node1 (the coordinator, drained, in its hook)")
                try watch.waitUntil("node2 drives the run; node1 is awaited", seconds: 30, statusFrom: [2, 3]) { o in
                    o.status?.coordinator == "node2" && o.status?.patchRun?.nodes[0].step == .rejoining
                }
                watch.start(1)
                let run = try Self.waitForRun(watch, 2, seconds: 240)
                #expect(run.state == .finished, "run 2: \(run.outcome) \(Self.steps(run))")
                #expect(Self.steps(run) == ["node1:done", "node2:done", "node3:done"])
                // node1's hook died with it: no answer, or (when the crash kills the hook a moment
                // before corrald) the killed hook's status 137; either way node1 rejoined and is done.
                #expect(run.nodes[0].hooks.allSatisfy { $0.result.status == 137 } && run.nodes.dropFirst().allSatisfy { $0.hooks.map(\.result.status) == [0] },
                        "hooks: \(run.nodes.map(\.hooks))")
                try watch.waitUntilConsistent("settled after run 2")
            }

            try watch.step("5. a hook failing on node2: retried once, node2 left paused, the run stops at --max-failed 0, the others resumed") {
                let hook = "echo patching $CORRAL_PATCH_NODE; [ $CORRAL_PATCH_NODE != node2 ]"
                let r = watch.corral(1, ["patch", "run", "--hook", hook, "--retries", "1", "--order", "node1,node2,node3"])
                #expect(r.status == 0, "patch run: \(r.output)")
                let run = try Self.waitForRun(watch, 3, seconds: 180)
                #expect(run.state == .stopped, "run 3: \(run.outcome)")
                #expect(Self.steps(run) == ["node1:done", "node2:failed", "node3:cancelled"])
                #expect(run.nodes[1].attempt == 2 && run.nodes[1].reason == "attempt 2: hook hook exited 1", "\(run.nodes[1])")
                #expect(run.nodes[1].hooks.last?.result.outputTail.contains("patching node2") == true, "\(run.nodes[1].hooks)")
                let o = try watch.waitUntilConsistent("settled after run 3")
                #expect(o.node("node2")?.state == "paused" && o.node("node1")?.state == "up" && o.node("node3")?.state == "up",
                        "\(o.summary)")
                for vm in Self.guests { #expect(o.vm(vm)?.state == "running", "\(o.summary)") }
                let status = watch.corral(1, ["patch", "status"])
                #expect(status.status == 0 && status.output.contains("node2") && status.output.contains("failed"), "\(status.output)")
            }

            try watch.step("6. pre and post hooks around the hook; an abort during a pre hook resumes the node and cancels the rest") {
                let resumed = watch.corral(1, ["node", "resume", "node2", "--failback", "--wait", "--timeout", "120"])
                #expect(resumed.status == 0, "resume node2: \(resumed.output)")
                let r = watch.corral(1, ["patch", "run", "--pre", "echo pre $CORRAL_PATCH_NODE", "--hook", "true", "--post", "echo post $CORRAL_PATCH_NODE",
                                         "--order", "node3"])
                #expect(r.status == 0, "patch run: \(r.output)")
                let run = try Self.waitForRun(watch, 4, seconds: 120)
                #expect(run.state == .finished && Self.steps(run) == ["node3:done"], "run 4: \(run.outcome) \(Self.steps(run))")
                let hooks = run.nodes[0].hooks
                #expect(hooks.map(\.phase) == [.pre, .hook, .post] && hooks.allSatisfy { $0.result.status == 0 }, "\(hooks)")
                #expect(hooks.first?.result.outputTail.contains("pre node3") == true && hooks.last?.result.outputTail.contains("post node3") == true, "\(hooks)")

                let slow = watch.corral(1, ["patch", "run", "--pre", "sleep 30", "--hook", "true", "--order", "node1,node3"])
                #expect(slow.status == 0, "patch run: \(slow.output)")
                try watch.waitUntil("node1's pre hook runs", seconds: 60) { $0.status?.patchRun?.nodes[0].step == .pre }
                let abort = watch.corral(2, ["patch", "abort"])
                #expect(abort.status == 0, "patch abort: \(abort.output)")
                let aborted = try Self.waitForRun(watch, 5, seconds: 60)
                #expect(aborted.state == .aborted && Self.steps(aborted) == ["node1:cancelled", "node3:cancelled"], "run 5: \(Self.steps(aborted))")
                let o = try watch.waitUntilConsistent("settled after the abort")
                #expect(["node1", "node2", "node3"].allSatisfy { o.node($0)?.state == "up" }, "\(o.summary)")
                for vm in Self.guests { #expect(o.vm(vm)?.state == "running", "\(o.summary)") }
                let again = watch.corral(1, ["patch", "abort"])
                #expect(again.status == 1, "nothing runs now: \(again.output)")
            }
        }
    }
}
