import CorralAgent
import Foundation

/// corrald, the node agent: read the config file and the flags, connect the hypervisor and the
/// watchdog, run the loop.
///
/// Exit status: 0 stopped (SIGTERM/SIGINT); 1 could not start (watchdog, libvirt, Corosync);
/// 2 bad configuration (flag or config file), which restarting cannot fix.
var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print(AgentConfiguration.usage)
    exit(0)
}
let checkOnly = arguments.contains("--check-config")
arguments.removeAll { $0 == "--check-config" }

let configuration: AgentConfiguration
do {
    configuration = try AgentConfiguration(commandLine: arguments, hostname: shortHostname())
} catch {
    fail("\(error)", status: 2)
}
if checkOnly {
    print(configuration.effectiveDescription)
    exit(0)
}

/// The host name up to the first dot, read without a DNS lookup.
func shortHostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count) == 0 else { return "" }
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self).split(separator: ".").first.map(String.init) ?? ""
}

func fail(_ text: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("corrald: \(text)\n".utf8))
    exit(status)
}

let log = AgentLog(path: configuration.logPath)
if let file = configuration.configFile { log.write("read config file \(file)") }
let watchdog: Watchdog
let hypervisor: Hypervisor
do {
    watchdog = try configuration.makeWatchdog()
    hypervisor = try await configuration.makeHypervisor(log: log)
} catch {
    fail("\(error)", status: 1)
}
let loop = await AgentLoop(configuration: configuration, hypervisor: hypervisor, watchdog: watchdog, log: log)
await loop.run()
