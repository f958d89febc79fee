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

    public static let usage = """
    usage: corrald [--state-dir DIR] [--socket PATH] [--log FILE] [--allow-group GROUP]
                   [--cpg-group NAME] [--name NODE] [--memory MIB] [--vcpus N] [--link-mbps N]
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
