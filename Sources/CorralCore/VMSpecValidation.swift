/// Checks an operator's VM description before anything changes, with one specific message.
public enum VMSpecValidation {
    public static let maxNameLength = 64

    public static func problem(_ spec: VMSpec, state: ClusterState) -> String? {
        if spec.name.isEmpty || spec.name.count > maxNameLength { return "VM name must be 1–\(maxNameLength) characters" }
        if let bad = spec.name.unicodeScalars.first(where: { !isNameCharacter($0) }) {
            return "VM name \(spec.name) contains '\(bad)'; use letters, digits, '-', '_' and '.'"
        }
        if spec.memoryMiB <= 0 { return "memory must be a positive number of MiB, not \(spec.memoryMiB)" }
        if spec.vcpus <= 0 { return "vcpus must be positive, not \(spec.vcpus)" }
        for owner in spec.preferredOwners where state.node(named: owner) == nil {
            return "preferred owner \(owner) is not a node of this cluster"
        }
        if Set(spec.preferredOwners).count != spec.preferredOwners.count { return "preferred owners list a node twice" }
        if let cls = spec.antiAffinityClass, cls.isEmpty { return "anti-affinity class must not be empty" }
        for disk in spec.disks where !disk.hasPrefix("/") { return "disk \(disk) must be an absolute path" }
        if let formats = spec.diskFormats, formats.count != spec.disks.count {
            return "\(formats.count) disk formats for \(spec.disks.count) disks"
        }
        for disk in spec.disks {
            if let user = state.vms.values.first(where: { $0.name != spec.name && $0.spec.disks.contains(disk) }) {
                return "disk \(disk) already belongs to VM \(user.name)"
            }
        }
        return nil
    }

    static func isNameCharacter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_" || c == "."
    }
}
