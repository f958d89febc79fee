/// What is committed on each node: running VMs plus migrations on their way in, so two
/// decisions in a row never promise the same memory twice.
public struct NodeLoad: Sendable {
    public struct Usage: Sendable {
        public var memoryMiB = 0
        public var vcpus = 0
        public var vmCount = 0
        var classes: [String: Int] = [:]
    }
    public private(set) var usage: [NodeID: Usage] = [:]

    public init(_ state: ClusterState) {
        for vm in state.vms.values where vm.occupiesNode {
            add(vm.spec, to: vm.node!)
        }
        for job in state.jobs.values where job.isActive {
            if let vm = state.vms[job.vm] { add(vm.spec, to: job.destination) }
        }
    }

    public mutating func add(_ spec: VMSpec, to node: NodeID) {
        var u = usage[node, default: Usage()]
        u.memoryMiB += spec.memoryMiB
        u.vcpus += spec.vcpus
        u.vmCount += 1
        if let cls = spec.antiAffinityClass { u.classes[cls, default: 0] += 1 }
        usage[node] = u
    }

    public func freeMemory(_ node: Node) -> Int { node.capacity.memoryMiB - (usage[node.id]?.memoryMiB ?? 0) }

    func fits(_ spec: VMSpec, on node: Node, vcpuOvercommit: Int) -> Bool {
        let u = usage[node.id] ?? Usage()
        return u.memoryMiB + spec.memoryMiB <= node.capacity.memoryMiB
            && u.vcpus + spec.vcpus <= node.capacity.vcpus * vcpuOvercommit
    }

    func hostsClass(_ cls: String?, on node: NodeID) -> Bool {
        guard let cls else { return false }
        return (usage[node]?.classes[cls] ?? 0) > 0
    }
}
