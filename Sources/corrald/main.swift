import CorralAgent
import Foundation

/// corrald, the node agent: parse, connect the hypervisor and the watchdog, run the loop.
let configuration: AgentConfiguration
do {
    configuration = try AgentConfiguration(arguments: Array(CommandLine.arguments.dropFirst()),
                                           hostname: shortHostname())
} catch {
    fail("\(error)")
}

/// The host name up to the first dot, read without a DNS lookup.
func shortHostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count) == 0 else { return "" }
    return String(cString: buffer).split(separator: ".").first.map(String.init) ?? ""
}

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(Data("corrald: \(text)\n".utf8))
    exit(2)
}

let log = AgentLog(path: configuration.logPath)
let watchdog: Watchdog
let hypervisor: Hypervisor
do {
    watchdog = try configuration.makeWatchdog()
    hypervisor = try await configuration.makeHypervisor(log: log)
} catch {
    fail("\(error)")
}
let loop = await AgentLoop(configuration: configuration, hypervisor: hypervisor, watchdog: watchdog, log: log)
await loop.run()
