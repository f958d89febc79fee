import CorralAgent
import Foundation

extension AgentConfiguration {
    /// Connects to libvirt, retrying every second for a while: at boot libvirtd may start after us.
    func makeHypervisor(log: AgentLog) async throws -> Hypervisor {
        guard hypervisor == .libvirt else { return RecordOnlyHypervisor() }
        let template = migrationURITemplate
        var attempt = 0
        while true {
            do {
                return try LibvirtHypervisor(uri: libvirtURI) { template.replacingOccurrences(of: "{address}", with: $0.address) }
            } catch {
                attempt += 1
                guard attempt < 60 else { throw error }
                if attempt % 10 == 1 { log.write("cannot connect to \(libvirtURI): \(error); retrying") }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}
