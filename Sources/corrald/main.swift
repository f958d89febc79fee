import CorralAgent
import Foundation

/// corrald, the node agent: parse, build the loop, run it.
let configuration: AgentConfiguration
do {
    configuration = try AgentConfiguration(arguments: Array(CommandLine.arguments.dropFirst()),
                                           hostname: shortHostname())
} catch {
    FileHandle.standardError.write(Data("corrald: \(error)\n".utf8))
    exit(2)
}
/// The host name up to the first dot, read without a DNS lookup.
func shortHostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count) == 0 else { return "" }
    return String(cString: buffer).split(separator: ".").first.map(String.init) ?? ""
}

let log = AgentLog(path: configuration.logPath)
let loop = await AgentLoop(configuration: configuration, log: log)
await loop.run()
