@testable import CorralAgent
import CorralCore
import Foundation
import Testing

/// corral.conf(5): the parser, the errors that name file, line and key, the precedence of
/// flags over the file, and that every key is documented where operators look.
@Suite struct AgentConfigurationFileTests {
    static let path = "/etc/corral/corral.conf"

    /// A configuration read from `text` as the default file, with `flags` after it.
    func load(_ text: String, flags: [String] = []) throws(AgentConfigurationError) -> AgentConfiguration {
        try AgentConfiguration(commandLine: ["--config", Self.path] + flags, hostname: "host", defaultConfigPath: "/nonexistent",
                               readFile: { _ in text })
    }

    /// The error text for `text` as the file; "" if it was accepted.
    func error(_ text: String, flags: [String] = []) -> String {
        do { _ = try load(text, flags: flags) } catch { return error.description }
        return ""
    }

    @Test func everyKeyIsReadFromTheFile() throws {
        let c = try load("""
        # a comment
           # an indented comment

        name = kvm1
        memory=4096
        vcpus =\t8
        link-mbps = 10000
        hypervisor = none
        libvirt-uri = qemu+ssh://x/system
        migration-uri = "qemu+tls://{address}/system"
        watchdog = file:/run/wd
        fence-agent = /usr/sbin/fence # not a comment
        state-dir = /srv/corral
        socket = /run/c.sock
        allow-group = corral
        log = /var/log/corrald.log
        cpg-group = corral-b\r
        """)
        #expect(c.nodeName == "kvm1")
        #expect(c.capacity.memoryMiB == 4096 && c.capacity.vcpus == 8)
        #expect(c.linkMiBps == 1192)
        #expect(c.hypervisor == .none)
        #expect(c.libvirtURI == "qemu+ssh://x/system")
        #expect(c.migrationURITemplate == "qemu+tls://{address}/system")
        #expect(c.watchdog == .file("/run/wd"))
        #expect(c.fenceAgent == "/usr/sbin/fence # not a comment")
        #expect(c.stateDirectory == "/srv/corral" && c.socketPath == "/run/c.sock")
        #expect(c.allowedGroup == "corral" && c.logPath == "/var/log/corrald.log" && c.groupName == "corral-b")
        #expect(c.given["memory"] == .init(value: "4096", origin: "/etc/corral/corral.conf:5"))
        #expect(Set(c.given.keys) == Set(AgentConfiguration.keys.map(\.name)), "the test sets every key")
    }

    @Test func flagsOverrideTheFile() throws {
        let c = try load("name = kvm1\nmemory = 4096\n", flags: ["--memory", "8192", "--vcpus", "2"])
        #expect(c.nodeName == "kvm1" && c.capacity.memoryMiB == 8192 && c.capacity.vcpus == 2)
        #expect(c.given["memory"]?.origin == "command line")
        #expect(c.given["name"]?.origin == "/etc/corral/corral.conf:1")
        #expect(c.configFile == Self.path)
    }

    @Test(arguments: [
        ("name = kvm1\nmemroy = 4096\n", "/etc/corral/corral.conf:2: unknown key memroy (did you mean memory?); known keys: name, memory, vcpus, link-mbps, hypervisor, libvirt-uri, migration-uri, watchdog, fence-agent, state-dir, socket, allow-group, log, cpg-group"),
        ("memory = lots\n", "/etc/corral/corral.conf:1: memory takes a positive whole number, not lots"),
        ("\n\nvcpus = 0\n", "/etc/corral/corral.conf:3: vcpus takes a positive whole number, not 0"),
        ("hypervisor = xen", "/etc/corral/corral.conf:1: hypervisor takes libvirt or none, not xen"),
        ("watchdog = sometimes", "/etc/corral/corral.conf:1: watchdog takes none, device:PATH or file:PATH, not sometimes"),
        ("fence-agent = fence.sh", "/etc/corral/corral.conf:1: fence-agent takes an absolute path, not fence.sh"),
        ("migration-uri = qemu+tls://host/system", "/etc/corral/corral.conf:1: migration-uri must contain {address}, e.g. qemu+tls://{address}/system"),
        ("memory 4096", "/etc/corral/corral.conf:1: expected key = value, not memory 4096"),
        ("= 4096", "/etc/corral/corral.conf:1: a setting needs a key before the ="),
        ("log =", "/etc/corral/corral.conf:1: key log needs a value (delete the line to keep the default)"),
        ("log = \"\"", "/etc/corral/corral.conf:1: key log needs a value (delete the line to keep the default)"),
        ("log = \"/var/log/x", "/etc/corral/corral.conf:1: key log: the value's opening quote is not closed"),
        ("--memory = 1", "/etc/corral/corral.conf:1: unknown key --memory (did you mean memory?); known keys: name, memory, vcpus, link-mbps, hypervisor, libvirt-uri, migration-uri, watchdog, fence-agent, state-dir, socket, allow-group, log, cpg-group"),
        ("mem ory = 1", "/etc/corral/corral.conf:1: bad key mem ory: keys are letters, digits and dashes, like link-mbps"),
        ("memory = 1\n# again:\nmemory = 2\n", "/etc/corral/corral.conf:3: key memory is already set on line 1; give each key once"),
    ])
    func badFilesAreRefusedWithFileLineAndKey(text: String, message: String) {
        #expect(error(text) == message)
    }

    @Test func aBadFlagIsStillNamedAsAFlag() {
        #expect(error("memory = 4096", flags: ["--memory", "x"]) == "--memory takes a positive whole number, not x")
        #expect(error("", flags: ["--memroy", "1"]).hasPrefix("unknown option --memroy\nusage: corrald"))
        #expect(error("", flags: ["--config"]).hasPrefix("--config needs a value"))
        #expect(error("", flags: ["--config", "a", "--config", "b"]) == "--config given twice")
    }

    @Test func whichFileIsRead() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = scratch.path + "/corral.conf"
        let absent = scratch.path + "/absent.conf"
        try "name = fromfile\n".write(toFile: file, atomically: true, encoding: .utf8)
        // The default path is read if it exists, and only then.
        #expect(try AgentConfiguration(commandLine: [], hostname: "h", defaultConfigPath: file).nodeName == "fromfile")
        let none = try AgentConfiguration(commandLine: [], hostname: "h", defaultConfigPath: absent)
        #expect(none.nodeName == "h" && none.configFile == nil)
        // --config none skips an existing default file; --config PATH must exist.
        #expect(try AgentConfiguration(commandLine: ["--config", "none"], hostname: "h", defaultConfigPath: file).nodeName == "h")
        #expect(try AgentConfiguration(commandLine: ["--config", file, "--vcpus", "3"], hostname: "h", defaultConfigPath: absent).capacity.vcpus == 3)
        do {
            _ = try AgentConfiguration(commandLine: ["--config", absent], hostname: "h", defaultConfigPath: file)
            Issue.record("a missing --config file was accepted")
        } catch {
            #expect(error.description == "cannot read config file \(absent): no such file")
        }
        // An empty name from the file is refused like an empty --name.
        #expect(error("name = \"\"") != "")
    }

    @Test func checkConfigShowsWhereEachSettingCameFrom() throws {
        let c = try load("memory = 4096\n", flags: ["--vcpus", "2"])
        let lines = c.effectiveDescription.split(separator: "\n").map(String.init)
        #expect(lines.first == "# corrald settings (config file /etc/corral/corral.conf)")
        #expect(lines.contains("memory = 4096  # /etc/corral/corral.conf:1"))
        #expect(lines.contains("vcpus = 2  # command line"))
        #expect(lines.contains("name = host  # default: host name up to the first dot"))
        #expect(lines.contains("# cpg-group: default corral"))
        #expect(lines.count == 1 + AgentConfiguration.keys.count)
    }

    /// Every key is in the shipped default file, corral.conf(5) and the operating guide, and
    /// the default file itself (all comments) is accepted.
    @Test func everyKeyIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let shipped = try String(contentsOfFile: root + "/Deploy/corral.conf", encoding: .utf8)
        let manual = try String(contentsOfFile: root + "/Deploy/man/corral.conf.5", encoding: .utf8)
        let guide = try String(contentsOfFile: root + "/Docs/operating.md", encoding: .utf8)
        for key in AgentConfiguration.keys {
            #expect(shipped.contains("# \(key.name) = "), "Deploy/corral.conf lacks \(key.name)")
            #expect(manual.contains(".B " + key.name.replacingOccurrences(of: "-", with: "\\-")), "corral.conf.5 lacks \(key.name)")
            #expect(guide.contains("`\(key.name)`"), "Docs/operating.md lacks \(key.name)")
        }
        let c = try load(shipped)
        #expect(c.given.isEmpty, "the shipped file only documents the defaults")
        let completion = try String(contentsOfFile: root + "/Deploy/completion/corral", encoding: .utf8)
        for key in RequestPlanner.configKeys { #expect(completion.contains(key), "bash completion lacks config key \(key)") }
    }
}
