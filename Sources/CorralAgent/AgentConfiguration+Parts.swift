import Foundation

/// Builds the parts corrald's flags select, failing with a message that names the flag.
extension AgentConfiguration {
    public func makeWatchdog() throws(AgentConfigurationError) -> Watchdog {
        switch watchdog ?? (hypervisor == .libvirt ? .device("/dev/watchdog") : .none) {
        case .none: return NoWatchdog()
        case let .file(path): return DeadlineFileWatchdog(path: path)
        case let .device(path):
            let runDirectory = (socketPath as NSString).deletingLastPathComponent
            do { return try LinuxWatchdogDevice(device: path, runDirectory: runDirectory) } catch {
                throw .init("cannot open the watchdog \(path): \(POSIXSupport.describe(errno: error.code)) (load softdog, or pass --watchdog none to run without one: then a hung agent is not reset)")
            }
        }
    }
}
