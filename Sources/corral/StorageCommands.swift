import CorralAgent
import CorralCore
import Foundation

/// `corral volume …` and `corral disk …`: parsing into requests, and the tables they print.
enum StorageCommands {
    /// The request a `volume` or `disk` change stands for.
    static func request(_ command: String, _ words: [String], _ args: inout Arguments) throws(UsageError) -> OperatorRequest {
        func one(_ what: String) throws(UsageError) -> String {
            guard words.count == 2 else { throw UsageError("usage: corral \(command) \(words.first ?? "") \(what)") }
            return words[1]
        }
        switch (command, words.first) {
        case ("volume", "add"?):
            let name = try one("NAME --path P [--shared | --local --node NODE]")
            guard let path = args.option("path") else { throw UsageError("volume add needs --path DIRECTORY") }
            let (shared, local) = (args.flag("shared"), args.flag("local"))
            if shared && local { throw UsageError("a volume is --shared or --local, not both") }
            return .addVolume(name: name, path: path, kind: local ? .local : .shared, node: args.option("node"))
        case ("volume", "remove"?): return .removeVolume(try one("NAME"))
        case ("volume", "move"?):
            let name = try one("NAME --to NODE")
            guard let to = args.option("to") else { throw UsageError("volume move needs --to NODE") }
            return .moveVolume(name, to: to)
        case ("volume", "maintenance"?): return .setVolumeState(try one("NAME [--force]"), .maintenance, force: args.flag("force"))
        case ("volume", "online"?): return .setVolumeState(try one("NAME"), .online, force: false)
        case ("disk", "create"?):
            let (volume, disk) = try reference(one("VOLUME/NAME --size SIZE [--format raw|qcow2]"))
            let formatText = args.option("format") ?? DiskFormat.raw.rawValue
            guard let format = DiskFormat(rawValue: formatText) else { throw UsageError("--format takes raw or qcow2, not \(formatText)") }
            return .createDisk(volume: volume, disk: disk, sizeMiB: try size(&args), format: format)
        case ("disk", "resize"?):
            let (volume, disk) = try reference(one("VOLUME/NAME --size SIZE"))
            return .resizeDisk(volume: volume, disk: disk, sizeMiB: try size(&args))
        case ("disk", "delete"?):
            let (volume, disk) = try reference(one("VOLUME/NAME"))
            return .deleteDisk(volume: volume, disk: disk)
        default:
            throw UsageError("unknown command: corral \(command) \(words.joined(separator: " ")) (corral --help lists the commands)")
        }
    }

    /// Disk operations run on the volume's coordinator, after the request is answered: the CLI
    /// waits for their outcome, which is what the operator asked about.
    static func waitsForOutcome(_ request: OperatorRequest) -> Bool {
        switch request {
        case .createDisk, .resizeDisk, .deleteDisk: true
        default: false
        }
    }

    /// `VOLUME/NAME` split in two.
    static func reference(_ text: String) throws(UsageError) -> (String, String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw UsageError("a disk is named VOLUME/NAME, not \(text)") }
        return (parts[0], parts[1])
    }

    /// --size in MiB: a number with an optional M, G or T suffix (512M, 10G); a bare number is MiB.
    static func size(_ args: inout Arguments) throws(UsageError) -> Int {
        guard let text = args.option("size") else { throw UsageError("--size SIZE is needed (e.g. 512M, 10G)") }
        let units: [Character: Int] = ["M": 1, "G": 1024, "T": 1024 * 1024]
        let scale = text.last.flatMap { units[Character($0.uppercased())] }
        guard let number = Int(scale == nil ? text : String(text.dropLast())), number > 0,
              number <= Int.max / 1024 / 1024 / (scale ?? 1) else {
            throw UsageError("--size takes a positive size like 512M, 10G or 1T, not \(text)")
        }
        return number * (scale ?? 1)
    }

    static func printVolumes(_ rows: [StatusReport.VolumeRow]) {
        ClusterCommands.table(["VOLUME", "KIND", "STATE", "COORDINATOR", "FREE", "DISKS", "SEEN BY", "PATH"], rows.map { v in
            [v.name, v.kind + (v.owner.map { " (\($0))" } ?? ""), v.state, v.coordinator ?? "-" + (v.handoffTo.map { " → \($0)" } ?? ""),
             v.capacityMiB > 0 ? "\(v.freeMiB)/\(v.capacityMiB) MiB" : "?", "\(v.disks.count)", v.seenBy.joined(separator: ","), v.path]
        })
    }

    static func printVolume(_ v: StatusReport.VolumeRow) {
        print("volume \(v.name): \(v.kind)\(v.owner.map { " on \($0)" } ?? ""), \(v.state), at \(v.path)")
        print("coordinator: \(v.coordinator ?? "none")\(v.handoffTo.map { " (handing over to \($0))" } ?? "")")
        print("seen by: \(v.seenBy.isEmpty ? "no node" : v.seenBy.joined(separator: " "))"
              + (v.unreachableFrom.isEmpty ? "" : "  unreachable from: \(v.unreachableFrom.joined(separator: " "))"))
        print("free: \(v.capacityMiB > 0 ? "\(v.freeMiB) of \(v.capacityMiB) MiB" : "not known yet")")
        if !v.runningVMs.isEmpty { print("running VMs on it: \(v.runningVMs.joined(separator: " "))") }
        print("")
        printDisks([v])
        if !v.operations.isEmpty { print("\npending:"); v.operations.forEach { print("  \($0.id): \($0.description)") } }
        if !v.failures.isEmpty { print("\nfailed:"); v.failures.forEach { print("  \($0)") } }
    }

    static func printDisks(_ volumes: [StatusReport.VolumeRow]) {
        ClusterCommands.table(["DISK", "FORMAT", "SIZE", "VM", "LEASE", "PATH"], volumes.flatMap { v in
            v.disks.map { d in
                ["\(v.name)/\(d.name)", d.format, "\(d.sizeMiB) MiB", d.vm ?? "-",
                 d.leaseHolders.isEmpty ? "-" : "\(d.leaseHolders.joined(separator: ",")) token \(d.leaseToken ?? 0)", d.path]
            }
        })
    }
}
