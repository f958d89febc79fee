import CorralCore
import Foundation

/// corrald's settings, from its command line. Every bad value is refused with its flag named.
public struct AgentConfiguration: Sendable {
    public var stateDirectory = "/var/lib/corral"
    public var socketPath = "/run/corral/corral.sock"
    public var logPath: String?
    /// Members of this group may use the control socket besides root.
    public var allowedGroup: String?
    public var groupName = "corral"
    public var nodeName: String
    public var capacity = Capacity(memoryMiB: 65_536, vcpus: 32)
    public var linkMiBps = 0
    /// `none` keeps VMs as records only; `libvirt` runs them through `libvirtURI`.
    public var hypervisor = HypervisorKind.libvirt
    public var libvirtURI = "qemu:///system"
    /// How the destination's libvirt is reached for a migration; `{address}` is the destination
    /// node's Corosync ring address. Production uses qemu+tls.
    public var migrationURITemplate = "qemu+tcp://{address}/system"
    /// Default: the watchdog device when VMs really run, none for record-only nodes.
    public var watchdog: WatchdogKind?
    /// Run as `COMMAND NODE` against a lost node; exit 0 = confirmed off.
    public var fenceAgent: String?

    public enum HypervisorKind: String, Sendable { case none, libvirt }
    public enum WatchdogKind: Sendable, Equatable {
        case none
        case device(String)
        case file(String)
    }

    public static let usage = """
    usage: corrald [--state-dir DIR] [--socket PATH] [--log FILE] [--allow-group GROUP]
                   [--cpg-group NAME] [--name NODE] [--memory MIB] [--vcpus N] [--link-mbps N]
                   [--hypervisor libvirt|none] [--libvirt-uri URI] [--migration-uri TEMPLATE]
                   [--watchdog none|device:PATH|file:PATH] [--fence-agent COMMAND]
    """

    public init(arguments: [String], hostname: String) throws(AgentConfigurationError) {
        nodeName = hostname
        var it = arguments.makeIterator()
        while let flag = it.next() {
            guard let value = it.next() else { throw .init("\(flag) needs a value\n\(Self.usage)") }
            func number() throws(AgentConfigurationError) -> Int {
                guard let n = Int(value), n > 0 else { throw .init("\(flag) takes a positive whole number, not \(value)") }
                return n
            }
            switch flag {
            case "--state-dir": stateDirectory = value
            case "--socket": socketPath = value
            case "--log": logPath = value
            case "--allow-group": allowedGroup = value
            case "--cpg-group": groupName = value
            case "--name": nodeName = value
            case "--memory": capacity.memoryMiB = try number()
            case "--vcpus": capacity.vcpus = try number()
            case "--link-mbps": linkMiBps = Units.mibps(megabits: try number())
            case "--hypervisor":
                guard let kind = HypervisorKind(rawValue: value) else { throw .init("--hypervisor takes libvirt or none, not \(value)") }
                hypervisor = kind
            case "--libvirt-uri": libvirtURI = value
            case "--migration-uri":
                guard value.contains("{address}") else { throw .init("--migration-uri must contain {address}, e.g. qemu+tls://{address}/system") }
                migrationURITemplate = value
            case "--watchdog":
                if value == "none" { watchdog = WatchdogKind.none }
                else if value.hasPrefix("device:"), value.count > 7 { watchdog = .device(String(value.dropFirst(7))) }
                else if value.hasPrefix("file:"), value.count > 5 { watchdog = .file(String(value.dropFirst(5))) }
                else { throw .init("--watchdog takes none, device:PATH or file:PATH, not \(value)") }
            case "--fence-agent":
                guard value.hasPrefix("/") else { throw .init("--fence-agent takes an absolute path, not \(value)") }
                fenceAgent = value
            default: throw .init("unknown option \(flag)\n\(Self.usage)")
            }
        }
        guard !nodeName.isEmpty else { throw .init("--name must not be empty") }
    }
}

public struct AgentConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ text: String) { description = text }
}
