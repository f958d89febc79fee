import CorralCore
import Foundation

/// corrald's settings, from its config file and its command line. Every bad value is refused
/// with its flag named, or with the file, line and key it came from.
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
    /// The config file read, if any.
    public private(set) var configFile: String?
    /// Every setting given, by key, with where it came from (`FILE:LINE` or `command line`).
    public private(set) var given: [String: Setting] = [:]

    public enum HypervisorKind: String, Sendable { case none, libvirt }
    public enum WatchdogKind: Sendable, Equatable {
        case none
        case device(String)
        case file(String)
    }

    /// One value as the operator wrote it.
    public struct Setting: Sendable, Equatable {
        public var value: String
        public var origin: String
    }

    /// One setting corrald understands: the config file's key is the flag without its dashes.
    public struct Key: Sendable {
        public var name: String
        public var syntax: String
        public var defaultValue: String
        public var meaning: String
        public var flag: String { "--" + name }
    }

    /// Every key, in the order `corrald --check-config` and the documentation list them.
    public static let keys: [Key] = [
        Key(name: "name", syntax: "NODE", defaultValue: "host name up to the first dot", meaning: "node name shown everywhere; unique in the cluster"),
        Key(name: "memory", syntax: "MIB", defaultValue: "65536", meaning: "memory this host offers to guests"),
        Key(name: "vcpus", syntax: "N", defaultValue: "32", meaning: "vCPUs this host offers to guests"),
        Key(name: "link-mbps", syntax: "N", defaultValue: "unmeasured", meaning: "speed of the migration network, Mbit/s"),
        Key(name: "hypervisor", syntax: "libvirt|none", defaultValue: "libvirt", meaning: "libvirt runs real guests; none keeps VMs as records"),
        Key(name: "libvirt-uri", syntax: "URI", defaultValue: "qemu:///system", meaning: "the local libvirt daemon"),
        Key(name: "migration-uri", syntax: "TEMPLATE", defaultValue: "qemu+tcp://{address}/system", meaning: "how the source's libvirtd reaches the destination's"),
        Key(name: "watchdog", syntax: "none|device:PATH|file:PATH", defaultValue: "device:/dev/watchdog with libvirt, none without", meaning: "what resets the host if corrald stops renewing its lease"),
        Key(name: "fence-agent", syntax: "PATH", defaultValue: "none", meaning: "program run as PROGRAM NODE against a lost node"),
        Key(name: "state-dir", syntax: "DIR", defaultValue: "/var/lib/corral", meaning: "state.bin and lease-deadline"),
        Key(name: "socket", syntax: "PATH", defaultValue: "/run/corral/corral.sock", meaning: "control socket"),
        Key(name: "allow-group", syntax: "GROUP", defaultValue: "none", meaning: "members of this group may use the socket besides root"),
        Key(name: "log", syntax: "FILE", defaultValue: "standard error", meaning: "log file"),
        Key(name: "cpg-group", syntax: "NAME", defaultValue: "corral", meaning: "CPG group name, one per cluster"),
    ]

    public static let defaultConfigPath = "/etc/corral/corral.conf"

    public static let usage = """
    usage: corrald [--config PATH|none] [--check-config]
                   [--state-dir DIR] [--socket PATH] [--log FILE] [--allow-group GROUP]
                   [--cpg-group NAME] [--name NODE] [--memory MIB] [--vcpus N] [--link-mbps N]
                   [--hypervisor libvirt|none] [--libvirt-uri URI] [--migration-uri TEMPLATE]
                   [--watchdog none|device:PATH|file:PATH] [--fence-agent COMMAND]
    Settings come from the defaults, then the config file (--config, default \(defaultConfigPath)
    if it exists; none reads no file), then the flags. See corral.conf(5).
    """

    /// From flags alone, without a config file.
    public init(arguments: [String], hostname: String) throws(AgentConfigurationError) {
        nodeName = hostname
        try applyFlags(arguments)
        try validate()
    }

    /// corrald's start: the defaults, then the config file, then the flags, which win.
    /// The file is `--config PATH` if given (`none`: no file), else `defaultConfigPath` if it
    /// exists. `readFile` returns a file's text or throws a readable reason.
    public init(commandLine arguments: [String], hostname: String,
                defaultConfigPath: String = Self.defaultConfigPath,
                readFile: (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) })
        throws(AgentConfigurationError)
    {
        nodeName = hostname
        var flags: [String] = []
        var explicit: String?
        var it = arguments.makeIterator()
        while let flag = it.next() {
            guard flag == "--config" else {
                flags.append(flag)
                if let value = it.next() { flags.append(value) }
                continue
            }
            guard let value = it.next(), !value.isEmpty else { throw .init("--config needs a value (a file, or none)\n\(Self.usage)") }
            guard explicit == nil else { throw .init("--config given twice") }
            explicit = value
        }
        let path: String?
        switch explicit {
        case "none"?: path = nil
        case let given?: path = given
        case nil: path = FileManager.default.fileExists(atPath: defaultConfigPath) ? defaultConfigPath : nil
        }
        if let path {
            let text: String
            do { text = try readFile(path) } catch {
                throw .init("cannot read config file \(path): \(Self.reason(error))\(explicit == nil ? " (remove it, or pass --config none)" : "")")
            }
            try applyFile(text, path: path)
            configFile = path
        }
        try applyFlags(flags)
        try validate()
    }

    /// Applies a config file's text: `key = value` lines, `#` comment lines, blank lines.
    /// Errors name the file, the line and the key.
    public mutating func applyFile(_ text: String, path: String) throws(AgentConfigurationError) {
        let entries: [ConfigFileEntry]
        do { entries = try ConfigFileEntry.parse(text) } catch {
            throw .init("\(path):\(error.line): \(error.problem)")
        }
        var seen: [String: Int] = [:]
        for entry in entries {
            let at = "\(path):\(entry.line)"
            if let first = seen[entry.key] { throw .init("\(at): key \(entry.key) is already set on line \(first); give each key once") }
            seen[entry.key] = entry.line
            let known: Bool
            do { known = try set(entry.key, entry.value, as: entry.key) } catch {
                throw .init("\(at): \(error.description)")
            }
            guard known else { throw .init("\(at): \(Self.unknownKeyMessage(entry.key))") }
            given[entry.key] = Setting(value: entry.value, origin: at)
        }
    }

    /// Applies `--key value` pairs; the same keys as the file.
    public mutating func applyFlags(_ arguments: [String]) throws(AgentConfigurationError) {
        var it = arguments.makeIterator()
        while let flag = it.next() {
            guard let value = it.next() else { throw .init("\(flag) needs a value\n\(Self.usage)") }
            guard flag.hasPrefix("--"), try set(String(flag.dropFirst(2)), value, as: flag) else {
                throw .init("unknown option \(flag)\n\(Self.usage)")
            }
            given[String(flag.dropFirst(2))] = Setting(value: value, origin: "command line")
        }
    }

    private func validate() throws(AgentConfigurationError) {
        guard !nodeName.isEmpty else { throw .init("--name must not be empty") }
    }

    /// Sets one key; `name` is how errors call it (`--memory` or `memory`). False: unknown key.
    private mutating func set(_ key: String, _ value: String, as name: String) throws(AgentConfigurationError) -> Bool {
        func number() throws(AgentConfigurationError) -> Int {
            guard let n = Int(value), n > 0 else { throw .init("\(name) takes a positive whole number, not \(value)") }
            return n
        }
        switch key {
        case "state-dir": stateDirectory = value
        case "socket": socketPath = value
        case "log": logPath = value
        case "allow-group": allowedGroup = value
        case "cpg-group": groupName = value
        case "name": nodeName = value
        case "memory": capacity.memoryMiB = try number()
        case "vcpus": capacity.vcpus = try number()
        case "link-mbps": linkMiBps = Units.mibps(megabits: try number())
        case "hypervisor":
            guard let kind = HypervisorKind(rawValue: value) else { throw .init("\(name) takes libvirt or none, not \(value)") }
            hypervisor = kind
        case "libvirt-uri": libvirtURI = value
        case "migration-uri":
            guard value.contains("{address}") else { throw .init("\(name) must contain {address}, e.g. qemu+tls://{address}/system") }
            migrationURITemplate = value
        case "watchdog":
            if value == "none" { watchdog = WatchdogKind.none }
            else if value.hasPrefix("device:"), value.count > 7 { watchdog = .device(String(value.dropFirst(7))) }
            else if value.hasPrefix("file:"), value.count > 5 { watchdog = .file(String(value.dropFirst(5))) }
            else { throw .init("\(name) takes none, device:PATH or file:PATH, not \(value)") }
        case "fence-agent":
            guard value.hasPrefix("/") else { throw .init("\(name) takes an absolute path, not \(value)") }
            fenceAgent = value
        default: return false
        }
        return true
    }

    static func unknownKeyMessage(_ key: String) -> String {
        let names = keys.map(\.name)
        let close = names.first { Self.editDistance($0, key) <= 2 }
        return "unknown key \(key)" + (close.map { " (did you mean \($0)?)" } ?? "") + "; known keys: " + names.joined(separator: ", ")
    }

    /// The effective settings, one `key = value` line each with where it came from; defaults
    /// as comments. What `corrald --check-config` prints.
    public var effectiveDescription: String {
        var lines = ["# corrald settings" + (configFile.map { " (config file \($0))" } ?? " (no config file)")]
        for key in Self.keys {
            if let setting = given[key.name] {
                lines.append("\(key.name) = \(setting.value)  # \(setting.origin)")
            } else if key.name == "name" {
                lines.append("name = \(nodeName)  # default: \(key.defaultValue)")
            } else {
                lines.append("# \(key.name): default \(key.defaultValue)")
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let posix = ns.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return POSIXSupport.describe(errno: Int32(posix.code))
        }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileReadNoSuchFileError: return "no such file"
            case NSFileReadNoPermissionError: return "permission denied"
            case NSFileReadInapplicableStringEncodingError: return "not UTF-8 text"
            default: break
            }
        }
        return "\(error)"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
}

public struct AgentConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ text: String) { description = text }
}
