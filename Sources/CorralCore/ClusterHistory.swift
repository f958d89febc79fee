/// One line of the cluster's history (`corral events`): what changed, about which node, VM or
/// migration. Derived, never replicated: every agent applies the same commands in the same
/// order, so each derives the same lines from the states before and after a step.
public struct ClusterEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Corosync membership or votequorum's verdict, as this node saw it.
        case membership
        /// A node's health or administrative state: fencing, fenced, draining, drained, up.
        case node
        /// A VM added, removed, placed, failed over, started, stopped or failed.
        case vm
        /// A live migration queued, started, finished or failed.
        case migration
        /// Cluster settings changed.
        case settings
        /// A patch run started, moved a node to its next step, or ended.
        case patch
        /// An operator request this node refused (nothing was changed).
        case refusal
    }

    public var kind: Kind
    /// The node, VM or migration the line is about.
    public var subject: String
    public var message: String

    public init(_ kind: Kind, _ subject: String, _ message: String) {
        self.kind = kind
        self.subject = subject
        self.message = message
    }
}

/// Turns two successive replicated states into history lines. Pure: the agent calls it after
/// each step that changed the state; tests call it on hand-made states.
public enum ClusterHistory {
    public static func events(from old: ClusterState, to new: ClusterState) -> [ClusterEvent] {
        guard old.epoch != new.epoch || old.version != new.version else { return [] }
        return nodeEvents(old, new) + vmEvents(old, new) + migrationEvents(old, new) + patchEvents(old, new)
            + (old.settings == new.settings ? [] : [ClusterEvent(.settings, "cluster", "settings changed (corral config show)")])
    }

    /// Membership and quorum as seen by the local node (not replicated, so not in the diff).
    public static func membershipEvent(members: [String], quorate: Bool) -> ClusterEvent {
        ClusterEvent(.membership, "cluster", "members \(members.joined(separator: ", ")); \(quorate ? "quorate" : "NOT quorate")")
    }

    static func nodeEvents(_ old: ClusterState, _ new: ClusterState) -> [ClusterEvent] {
        var out: [ClusterEvent] = []
        for node in new.sortedNodes {
            guard let before = old.nodes[node.id] else {
                out.append(ClusterEvent(.node, node.name, "joined the cluster (\(node.capacity.memoryMiB) MiB, \(node.capacity.vcpus) vCPUs)"))
                continue
            }
            if before.state != node.state {
                out.append(ClusterEvent(.node, node.name, "\(before.state.rawValue) → \(node.state.rawValue)"))
            }
        }
        for node in old.sortedNodes where new.nodes[node.id] == nil {
            out.append(ClusterEvent(.node, node.name, "removed from the cluster"))
        }
        return out
    }

    static func vmEvents(_ old: ClusterState, _ new: ClusterState) -> [ClusterEvent] {
        var out: [ClusterEvent] = []
        for vm in new.sortedVMs {
            guard let before = old.vms[vm.name] else {
                out.append(ClusterEvent(.vm, vm.name, "added (\(vm.spec.memoryMiB) MiB, \(vm.state.rawValue))"))
                continue
            }
            guard before.state != vm.state || before.node != vm.node else { continue }
            let place = vm.node.map { " on \(new.nodeName($0))" } ?? ""
            var message = "\(before.state.rawValue) → \(vm.state.rawValue)\(place)"
            if let from = before.node, let to = vm.node, from != to {
                let lost = new.nodes[from].map { $0.health == .fenced || $0.health == .fencing || $0.health == .down } ?? true
                message += lost ? " (failed over from \(new.nodeName(from)))" : " (from \(new.nodeName(from)))"
            }
            if before.state == .pending, before.reason.hasPrefix("failover"), vm.node != nil {
                // Placed by a failover: say so on the placement line too (the count of failovers).
                message += " (after \(before.reason))"
            }
            if !vm.reason.isEmpty, vm.reason != before.reason { message += ": \(vm.reason)" }
            out.append(ClusterEvent(.vm, vm.name, message))
        }
        for vm in old.sortedVMs where new.vms[vm.name] == nil {
            out.append(ClusterEvent(.vm, vm.name, "removed"))
        }
        return out
    }

    static func migrationEvents(_ old: ClusterState, _ new: ClusterState) -> [ClusterEvent] {
        var out: [ClusterEvent] = []
        for job in new.sortedJobs {
            let subject = "migration \(job.id)"
            let route = "\(job.vm) \(new.nodeName(job.source)) → \(new.nodeName(job.destination))"
            guard let before = old.jobs[job.id] else {
                out.append(ClusterEvent(.migration, subject, "\(job.state.rawValue): \(route) (\(job.purpose.rawValue))"))
                continue
            }
            guard before.state != job.state else { continue }
            switch job.state {
            case .succeeded: out.append(ClusterEvent(.migration, subject, "succeeded: \(route), downtime \(job.downtimeMs) ms"))
            case .failed: out.append(ClusterEvent(.migration, subject, "failed: \(route): \(job.failure)"))
            case .queued, .running: out.append(ClusterEvent(.migration, subject, "\(job.state.rawValue): \(route)"))
            }
        }
        return out
    }

    static func patchEvents(_ old: ClusterState, _ new: ClusterState) -> [ClusterEvent] {
        guard let run = new.patchRun, run != old.patchRun else { return [] }
        let subject = "patch run \(run.id)"
        let before = old.patchRun?.id == run.id ? old.patchRun : nil
        var out: [ClusterEvent] = []
        if before == nil { out.append(ClusterEvent(.patch, subject, "started: \(run.nodes.map { new.nodeName($0.node) }.joined(separator: ", "))")) }
        for node in run.nodes {
            let was = before?.nodes.first { $0.node == node.node }
            guard was?.step != node.step || was?.attempt != node.attempt, node.step != .waiting else { continue }
            let why = node.reason.isEmpty || node.reason == was?.reason ? "" : ": \(node.reason)"
            out.append(ClusterEvent(.patch, subject, "\(new.nodeName(node.node)) \(node.step.rawValue) (attempt \(node.attempt))\(why)"))
        }
        if before?.state != run.state, run.state != .running {
            out.append(ClusterEvent(.patch, subject, "\(run.state.rawValue)\(run.outcome.isEmpty ? "" : ": \(run.outcome)")"))
        }
        return out
    }
}
