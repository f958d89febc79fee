/// The replicated state machine: one deterministic transition per command.
extension ClusterState {
    public mutating func apply(_ command: Command) -> ApplyOutcome {
        if case let .heartbeat(node, _, leaseMs) = command {
            // Recorded only when it grows, so the state (and its version) stays still otherwise.
            if let known = nodes[node]?.longestLeaseMs, leaseMs > known {
                nodes[node]!.longestLeaseMs = leaseMs
                version += 1
            }
            return .applied
        }
        let outcome = transition(command)
        if outcome == .applied { version += 1 }
        return outcome
    }

    private mutating func transition(_ command: Command) -> ApplyOutcome {
        switch command {
        case let .addVM(spec, running, dirty): return addVM(spec, running: running, dirty: dirty)
        case let .removeVM(name): return removeVM(name)
        case let .startVM(name): return startVM(name)
        case let .stopVM(name): return stopVM(name)
        case let .moveVM(name, to): return moveVM(name, to: to)
        case let .drainNode(id): return drainNode(id)
        case let .pauseNode(id): return setAdmin(id, .paused, from: [.active])
        case let .resumeNode(id, failback): return resumeNode(id, failback: failback)
        case let .setMigrationSettings(m):
            settings.migration = m
            return .applied
        case let .setRecoverySettings(r):
            // Nodes renewed under the old setting keep that lease until it runs out.
            for node in sortedNodes {
                nodes[node.id]!.longestLeaseMs = max(node.longestLeaseMs, settings.recovery.leaseMs)
            }
            settings.recovery = r
            return .applied
        case .addVolume, .removeVolume, .setVolumeState, .moveVolumeCoordinator, .assignVolumeCoordinator,
             .queueDiskOperation, .diskOperationFinished, .volumeProbed:
            return applyStorage(command)
        case let .registerNode(spec): return registerNode(spec)
        case .heartbeat: return .applied
        case let .place(vm, node): return place(vm, on: node)
        case let .markPending(name, reason):
            guard var vm = vms[name], vm.state == .pending else { return .refused("VM \(name) is not pending") }
            vm.reason = reason
            vms[name] = vm
            return .applied
        case let .queueMigration(vm, to, purpose): return queueMigration(vm, to: to, purpose: purpose)
        case let .startMigration(id, bw): return startMigration(id, bandwidth: bw)
        case let .setMigrationBandwidth(id, bw):
            guard var job = jobs[id], job.state == .running else { return .refused("migration \(id) is not running") }
            job.bandwidthMiBps = bw
            jobs[id] = job
            return .applied
        case let .declareFenced(id, _): return declareFenced(id)
        case let .finishDrain(id): return finishDrain(id)
        case let .forgiveCrashes(name):
            guard vms[name]?.crashCount ?? 0 > 0 else { return .refused("VM \(name) has no crashes to forgive") }
            vms[name]!.crashCount = 0
            vms[name]!.lastCrashNode = nil
            return .applied
        case let .failDrain(id, reasons): return failDrain(id, reasons: reasons)
        case let .vmStarted(name, node, tokens): return vmStarted(name, on: node, tokens: tokens)
        case let .vmStopped(name, node, crashed): return vmStopped(name, on: node, crashed: crashed)
        case let .migrationProgress(id, progress):
            guard var job = jobs[id], job.state == .running else { return .refused("migration \(id) is not running") }
            job.progress = progress
            jobs[id] = job
            if progress.dirtyRateMiBps > 0 { vms[job.vm]?.dirtyRateMiBps = progress.dirtyRateMiBps }
            // An unconfigured link carries at least what its migrations send together right
            // now: the measured link only grows (it starts at 0 = unknown). A configured one
            // is the operator's word.
            let sending = jobs.values.filter { $0.source == job.source && $0.state == .running }
                .reduce(0) { $0 + ($1.progress?.rateMiBps ?? 0) }
            if let node = nodes[job.source], !node.linkConfigured, sending > node.linkMiBps { nodes[job.source]!.linkMiBps = sending }
            return .applied
        case let .migrationFinished(id, downtime): return migrationFinished(id, downtimeMs: downtime)
        case let .migrationFailed(id, reason): return migrationFailed(id, reason: reason)
        case let .dirtyRateMeasured(name, rate):
            guard vms[name] != nil else { return .refused("no VM named \(name)") }
            vms[name]!.dirtyRateMiBps = max(0, rate)
            return .applied
        case let .migrationOverheadMeasured(ms):
            // Halfway towards each measurement: one slow start does not swing it.
            let setup = min(10_000, max(100, (settings.migration.setupMs + ms + 1) / 2))
            guard setup != settings.migration.setupMs else { return .refused("migration set-up time unchanged") }
            settings.migration.setupMs = setup
            return .applied
        case let .startPatchRun(run): return startPatchRun(run)
        case let .abortPatchRun(run, force): return abortPatchRun(run, forceRecover: force)
        case let .advancePatch(run, node, step, attempt, reason, at):
            return advancePatch(run, node: node, to: step, attempt: attempt, reason: reason, at: at)
        case let .patchHookStarted(run, node, phase, attempt): return patchHookStarted(run, node: node, phase: phase, attempt: attempt)
        case let .patchHookFinished(run, node, phase, attempt, result):
            return patchHookFinished(run, node: node, phase: phase, attempt: attempt, result)
        case let .endPatchRun(run, end, outcome): return endPatchRun(run, end, outcome: outcome)
        case let .linkMeasured(id, link, stream):
            guard nodes[id] != nil else { return .refused("unknown node \(id)") }
            nodes[id]!.linkMiBps = max(0, link)
            if stream > 0 { settings.migration.streamMiBps = stream }
            return .applied
        }
    }

    /// Folds a new quorate membership into the state (after the state sync). Nodes that left
    /// while holding VMs or leases must be fenced before anything of theirs runs elsewhere.
    public mutating func applyMembership(_ members: [NodeID]) {
        let present = Set(members)
        for node in sortedNodes {
            var n = node
            if present.contains(n.id) {
                if n.health != .up { n.health = .up }
            } else if n.health == .up {
                n.health = holdsAnything(n.id) ? .fencing : .down
                if n.health == .fencing { n.fencingEpoch = epoch }
                for job in sortedJobs where job.state == .queued && (job.source == n.id || job.destination == n.id) {
                    finishJob(job.id, failed: "\(n.name) left the cluster")
                }
                // A running migration to it stays running: the guest may already have switched
                // over, so only the source's own report (failed: still here; completed: it is
                // there, and gets fenced with the node) may say where it runs.
            }
            nodes[n.id] = n
        }
        noteRebootsDuringHooks(present)
    }

    /// Runs or may run something: a VM, a lease, an incoming migration that may have switched
    /// over, or a disk operation of a volume it coordinates.
    func holdsAnything(_ id: NodeID) -> Bool {
        vms.values.contains { $0.node == id && $0.occupiesNode } || leases.values.contains { $0.holders.contains(id) }
            || jobs.values.contains { $0.state == .running && $0.destination == id }
            || volumes.values.contains { $0.coordinator == id && !$0.operations.isEmpty }
    }

    // MARK: operator commands

    private mutating func addVM(_ spec: VMSpec, running: Bool, dirty: Int) -> ApplyOutcome {
        if let problem = VMSpecValidation.problem(spec, state: self) { return .refused(problem) }
        guard vms[spec.name] == nil else { return .refused("a VM named \(spec.name) already exists") }
        vms[spec.name] = VirtualMachine(spec: spec, desiredRunning: running, dirtyRateMiBps: dirty)
        return .applied
    }

    private mutating func removeVM(_ name: String) -> ApplyOutcome {
        guard let vm = vms[name] else { return .refused("no VM named \(name)") }
        guard vm.state == .stopped || vm.state == .failed || vm.state == .pending else {
            return .refused("VM \(name) is \(vm.state.rawValue); stop it before removing it")
        }
        releaseLeases(of: vm.spec, holder: nil)
        vms[name] = nil
        return .applied
    }

    private mutating func startVM(_ name: String) -> ApplyOutcome {
        guard var vm = vms[name] else { return .refused("no VM named \(name)") }
        vm.desiredRunning = true
        vm.crashCount = 0
        if vm.state == .stopped || vm.state == .failed {
            vm.state = .pending
            vm.reason = "not placed yet"
        }
        vms[name] = vm
        return .applied
    }

    mutating func stopVM(_ name: String) -> ApplyOutcome {
        guard var vm = vms[name] else { return .refused("no VM named \(name)") }
        if vm.state == .migrating { return .refused("VM \(name) is migrating; wait for the migration to end") }
        vm.desiredRunning = false
        switch vm.state {
        case .running, .starting: vm.state = .stopping
        case .pending, .failed:
            vm.state = .stopped
            vm.reason = ""
        default: break
        }
        vms[name] = vm
        return .applied
    }

    private mutating func moveVM(_ name: String, to: NodeID) -> ApplyOutcome {
        guard let vm = vms[name] else { return .refused("no VM named \(name)") }
        guard vm.state == .running, let from = vm.node else { return .refused("VM \(name) is \(vm.state.rawValue), not running") }
        if from == to { return .refused("VM \(name) already runs on \(nodeName(to))") }
        return queueMigration(name, to: to, purpose: .move)
    }

    mutating func drainNode(_ id: NodeID) -> ApplyOutcome {
        guard var node = nodes[id] else { return .refused("unknown node \(id)") }
        guard node.health == .up else { return .refused("node \(node.name) is \(node.state.rawValue)") }
        guard node.admin == .active || node.admin == .paused else { return .refused("node \(node.name) is already \(node.admin.rawValue)") }
        node.admin = .draining
        node.drainFailures = []
        node.drainFirstJob = nextJobID
        nodes[id] = node
        return .applied
    }

    private mutating func setAdmin(_ id: NodeID, _ admin: NodeAdmin, from allowed: [NodeAdmin]) -> ApplyOutcome {
        guard var node = nodes[id] else { return .refused("unknown node \(id)") }
        guard allowed.contains(node.admin) else { return .refused("node \(node.name) is \(node.admin.rawValue)") }
        node.admin = admin
        nodes[id] = node
        return .applied
    }

    mutating func resumeNode(_ id: NodeID, failback: Bool) -> ApplyOutcome {
        guard var node = nodes[id] else { return .refused("unknown node \(id)") }
        node.admin = .active
        node.drainFailures = []
        nodes[id] = node
        for job in sortedJobs where job.state == .queued && job.source == id && job.purpose == .drain {
            finishJob(job.id, failed: "drain of \(node.name) cancelled by resume")
        }
        guard failback, node.health == .up else { return .applied }
        for vm in sortedVMs where vm.spec.preferredOwners.first == node.name && vm.state == .running
            && vm.node != id && activeJob(for: vm.name) == nil {
            _ = queueMigration(vm.name, to: id, purpose: .failback)
        }
        return .applied
    }

    private mutating func registerNode(_ spec: NodeSpec) -> ApplyOutcome {
        guard spec.capacity.memoryMiB > 0, spec.capacity.vcpus > 0, !spec.name.isEmpty else {
            return .refused("node \(spec.id) registered with an empty name or no capacity")
        }
        if let other = nodes.values.first(where: { $0.name == spec.name && $0.id != spec.id }) {
            return .refused("node name \(spec.name) is already used by node id \(other.id)")
        }
        var node = nodes[spec.id] ?? Node(id: spec.id, name: spec.name, capacity: spec.capacity)
        node.name = spec.name
        node.capacity = spec.capacity
        if spec.linkMiBps > 0 {
            node.linkMiBps = spec.linkMiBps
            node.linkConfigured = true
        }
        nodes[spec.id] = node
        return .applied
    }

    // MARK: coordinator decisions

    private mutating func place(_ name: String, on id: NodeID) -> ApplyOutcome {
        guard var vm = vms[name], vm.state == .pending, vm.desiredRunning else { return .refused("VM \(name) is not pending") }
        guard let node = nodes[id], node.acceptsVMs else { return .refused("node \(id) does not accept VMs") }
        guard NodeLoad(self).fits(vm.spec, on: node, vcpuOvercommit: settings.placement.vcpuOvercommit) else {
            return .refused("VM \(name) does not fit on \(node.name)")
        }
        guard storageAllows(vm.spec, on: id) else { return .refused("\(node.name) does not see every volume of VM \(name)") }
        for disk in vm.spec.disks {
            if let lease = leases[disk], lease.mode == .exclusive, lease.holders.contains(where: { $0 != id }) {
                return .refused("disk \(disk) is leased to \(nodeName(lease.holders.first))")
            }
        }
        for disk in vm.spec.disks { grantLease(disk, to: id, replacing: nil) }
        vm.node = id
        vm.state = .starting
        vm.reason = ""
        vms[name] = vm
        return .applied
    }

    private mutating func queueMigration(_ name: String, to: NodeID, purpose: MigrationPurpose) -> ApplyOutcome {
        guard let vm = vms[name], vm.state == .running, let from = vm.node else { return .refused("VM \(name) is not running") }
        guard activeJob(for: name) == nil else { return .refused("VM \(name) already has a migration queued or running") }
        guard let dest = nodes[to] else { return .refused("unknown node \(to)") }
        guard dest.health == .up, dest.admin == .active else { return .refused("node \(dest.name) is \(dest.state.rawValue) and takes no VMs") }
        guard from != to else { return .refused("VM \(name) already runs on \(dest.name)") }
        guard NodeLoad(self).fits(vm.spec, on: dest, vcpuOvercommit: settings.placement.vcpuOvercommit) else {
            return .refused("VM \(name) (\(vm.spec.memoryMiB) MiB) does not fit on \(dest.name)")
        }
        guard storageAllows(vm.spec, on: to) else { return .refused("\(dest.name) does not see every volume of VM \(name)") }
        let id = nextJobID
        nextJobID += 1
        jobs[id] = MigrationJob(id: id, vm: name, source: from, destination: to, purpose: purpose)
        return .applied
    }

    private mutating func startMigration(_ id: Int, bandwidth: Int) -> ApplyOutcome {
        guard var job = jobs[id], job.state == .queued else { return .refused("migration \(id) is not queued") }
        guard var vm = vms[job.vm], vm.state == .running, vm.node == job.source else {
            finishJob(id, failed: "VM \(job.vm) is no longer running on \(nodeName(job.source))")
            return .refused("VM \(job.vm) is no longer running on \(nodeName(job.source))")
        }
        job.state = .running
        job.bandwidthMiBps = bandwidth
        jobs[id] = job
        vm.state = .migrating
        vms[job.vm] = vm
        return .applied
    }

    private mutating func declareFenced(_ id: NodeID) -> ApplyOutcome {
        // An `up` node is fenced when it went silent inside the membership (a hung agent): its
        // lease ran out, so its watchdog has reset it.
        guard var node = nodes[id], node.health == .fencing || node.health == .up else { return .refused("node \(id) is not being fenced") }
        node.health = .fenced
        nodes[id] = node
        // A guest migrating away from the fenced node may already run on its destination:
        // it waits for that node's word (or its fence) instead of being placed anywhere.
        var awaiting: [String: NodeID] = [:]
        for job in sortedJobs where job.state == .running && job.source == id {
            if let destination = nodes[job.destination], destination.health == .up || destination.health == .fencing {
                awaiting[job.vm] = job.destination
            }
        }
        for job in sortedJobs where job.isActive && (job.source == id || job.destination == id) {
            finishJob(job.id, failed: "\(node.name) was fenced")
        }
        for (name, destination) in awaiting.sorted(by: { $0.key < $1.key }) where vms[name]?.node == id {
            vms[name]!.node = destination
            vms[name]!.state = .awaitingDestination
            vms[name]!.reason = "\(node.name) was fenced mid-migration; waiting for \(nodeName(destination)) to say whether it runs it"
        }
        for var vm in sortedVMs where vm.node == id {
            vm.node = nil
            if vm.desiredRunning && vm.spec.highlyAvailable {
                vm.state = .pending
                vm.reason = "failover from \(node.name)"
            } else {
                vm.state = .stopped
                vm.reason = vm.desiredRunning ? "stopped: \(node.name) failed and the VM is not highly available" : ""
                vm.desiredRunning = false
            }
            vms[vm.name] = vm
        }
        for lease in leases.values.sorted(by: { $0.disk < $1.disk }) where lease.holders.contains(id) {
            revokeLease(lease.disk, from: id)
        }
        return .applied
    }

    private mutating func finishDrain(_ id: NodeID) -> ApplyOutcome {
        guard let node = nodes[id], node.admin == .draining else { return .refused("node \(id) is not draining") }
        if vms.values.contains(where: { $0.node == id && $0.occupiesNode }) {
            return .refused("node \(node.name) still runs VMs")
        }
        nodes[id]!.admin = .drained
        return .applied
    }

    private mutating func failDrain(_ id: NodeID, reasons: [String]) -> ApplyOutcome {
        guard let node = nodes[id], node.admin == .draining else { return .refused("node \(id) is not draining") }
        nodes[id]!.admin = .paused
        nodes[id]!.drainFailures = reasons
        for job in sortedJobs where job.state == .queued && job.source == id && job.purpose == .drain {
            finishJob(job.id, failed: "drain of \(node.name) stopped")
        }
        return .applied
    }

    // MARK: facts

    private mutating func vmStarted(_ name: String, on id: NodeID, tokens: [UInt64]) -> ApplyOutcome {
        guard var vm = vms[name] else { return .refused("no VM named \(name)") }
        if vm.node == nil && (vm.state == .stopped || vm.state == .pending) {
            // A VM found running where the cluster had none: record where it really runs.
            if let held = vm.spec.disks.first(where: { leases[$0].map { $0.mode == .exclusive && !$0.holders.isEmpty } ?? false }) {
                return .refused("disk \(held) of \(name) is leased to another node")
            }
            for disk in vm.spec.disks { grantLease(disk, to: id, replacing: nil) }
            vm.node = id
            vm.state = .running
            vm.desiredRunning = true
            vm.reason = ""
            vms[name] = vm
            return .applied
        }
        guard vm.node == id else { return .refused("VM \(name) is assigned to \(nodeName(vm.node)), not \(nodeName(id))") }
        if vm.state == .awaitingDestination {
            // It switched over before its source was fenced: it runs here, with fresh leases.
            for disk in vm.spec.disks { grantLease(disk, to: id, replacing: nil) }
            vm.state = .running
            vm.reason = ""
            vms[name] = vm
            return .applied
        }
        for (disk, token) in zip(vm.spec.disks, tokens) {
            guard let lease = leases[disk], lease.holders.contains(id), lease.token == token else {
                return .refused("stale lease token \(token) for \(disk)")
            }
        }
        if vm.state == .starting {
            vm.state = .running
            vms[name] = vm
        }
        return .applied
    }

    private mutating func vmStopped(_ name: String, on id: NodeID, crashed: Bool) -> ApplyOutcome {
        guard var vm = vms[name] else { return .refused("no VM named \(name)") }
        guard vm.node == id else { return .refused("VM \(name) is not on \(nodeName(id))") }
        if vm.state == .migrating, let job = activeJob(for: name), job.state == .running, job.source == id,
           let destination = nodes[job.destination], destination.health == .up || destination.health == .fencing {
            // The source no longer has it mid-migration (its agent or host restarted): it may
            // have switched over. Only the destination can say; nothing places it meanwhile.
            finishJob(job.id, failed: "\(nodeName(id)) lost \(name) mid-migration; \(destination.name) decides where it runs")
            releaseLeases(of: vm.spec, holder: id)
            vms[name]!.node = job.destination
            vms[name]!.state = .awaitingDestination
            vms[name]!.reason = "\(nodeName(id)) lost it mid-migration; waiting for \(destination.name) to say whether it runs it"
            return .applied
        }
        if let job = activeJob(for: name) { finishJob(job.id, failed: "VM stopped during the migration") }
        releaseLeases(of: vm.spec, holder: id)
        if vm.state == .awaitingDestination {
            // It never switched over, and its source is fenced: an ordinary failover.
            vm.node = nil
            vm.state = vm.desiredRunning && vm.spec.highlyAvailable ? .pending : .stopped
            vm.reason = vm.state == .pending ? "failover: it did not reach \(nodeName(id)) before its source was fenced" : ""
            vm.desiredRunning = vm.state == .pending
            vms[name] = vm
            return .applied
        }
        vm.node = nil
        let unexpected = crashed || vm.state != .stopping
        if !vm.desiredRunning || !unexpected {
            vm.state = .stopped
            vm.reason = ""
            vm.desiredRunning = false
        } else {
            vm.crashCount += 1
            vm.lastCrashNode = id
            if !vm.spec.highlyAvailable {
                vm.state = .stopped
                vm.desiredRunning = false
                vm.reason = "crashed on \(nodeName(id)); not highly available"
            } else if vm.crashCount > settings.recovery.maxCrashes {
                vm.state = .failed
                vm.reason = "crashed \(vm.crashCount) times; left stopped (start it to retry)"
            } else {
                vm.state = .pending
                vm.reason = "restarting after crash \(vm.crashCount) on \(nodeName(id))"
            }
        }
        vms[name] = vm
        return .applied
    }

    private mutating func migrationFinished(_ id: Int, downtimeMs: Int) -> ApplyOutcome {
        guard var job = jobs[id], job.state == .running else { return .refused("migration \(id) is not running") }
        guard var vm = vms[job.vm], vm.node == job.source else { return .refused("VM \(job.vm) is not on the source") }
        job.downtimeMs = downtimeMs
        if var p = job.progress { p.remainingMiB = 0; job.progress = p }
        jobs[id] = job
        finishJob(id, failed: nil)
        // Switchover: the lease follows the VM with a new token, so the source's old token is dead.
        for disk in vm.spec.disks { grantLease(disk, to: job.destination, replacing: job.source) }
        vm.node = job.destination
        vm.state = .running
        vms[job.vm] = vm
        return .applied
    }

    private mutating func migrationFailed(_ id: Int, reason: String) -> ApplyOutcome {
        guard let job = jobs[id], job.isActive else { return .refused("migration \(id) is not active") }
        finishJob(id, failed: reason)
        return .applied
    }

    // MARK: helpers

    /// Ends a job; a VM that was migrating keeps running on its source.
    mutating func finishJob(_ id: Int, failed reason: String?) {
        guard var job = jobs[id] else { return }
        job.state = reason == nil ? .succeeded : .failed
        job.failure = reason ?? ""
        jobs[id] = job
        if reason != nil, var vm = vms[job.vm], vm.state == .migrating {
            vm.state = .running
            vms[job.vm] = vm
        }
        pruneFinishedJobs()
    }

    private mutating func pruneFinishedJobs() {
        let finished = jobs.values.filter { !$0.isActive }.map(\.id).sorted()
        for id in finished.dropLast(Self.finishedJobsKept) { jobs[id] = nil }
    }

    mutating func grantLease(_ disk: String, to id: NodeID, replacing old: NodeID?) {
        var lease = leases[disk] ?? DiskLease(disk: disk, holders: [], token: 0, mode: .exclusive)
        lease.holders.removeAll { $0 == old || lease.mode == .exclusive }
        if !lease.holders.contains(id) { lease.holders.append(id) }
        lease.holders.sort()
        lease.token = nextToken
        nextToken += 1
        leases[disk] = lease
    }

    mutating func revokeLease(_ disk: String, from id: NodeID) {
        guard var lease = leases[disk] else { return }
        lease.holders.removeAll { $0 == id }
        lease.token = nextToken
        nextToken += 1
        leases[disk] = lease
    }

    private mutating func releaseLeases(of spec: VMSpec, holder: NodeID?) {
        for disk in spec.disks {
            guard let lease = leases[disk] else { continue }
            if let holder { revokeLease(disk, from: holder) } else { leases[disk] = lease.holders.isEmpty ? nil : lease }
        }
    }
}
