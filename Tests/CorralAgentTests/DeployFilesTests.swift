@testable import CorralAgent
import Foundation
import Testing

/// The shipped deployment files keep their contracts: the unit's lease-safe restart policy
/// and corrald's exit statuses it relies on, the metrics timer, the tmpfiles rule, the man
/// pages (groff without warnings), and Deploy/install's layout into a staging directory.
@Suite(.serialized) struct DeployFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func read(_ path: String) throws -> String { try String(contentsOfFile: root + "/" + path, encoding: .utf8) }

    /// The unit's settings, comments dropped: key → values in order.
    static func unit(_ path: String) throws -> [String: [String]] {
        var settings: [String: [String]] = [:]
        for line in try read(path).split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("[") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            settings[String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        return settings
    }

    static func run(_ program: String, _ arguments: [String]) -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return (-1, "", "cannot run \(program): \(error)") }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    static var buildDirectory: String { URL(fileURLWithPath: CLIExitStatusTests.corral).deletingLastPathComponent().path }

    @Test func corraldUnitKeepsTheLeaseRules() throws {
        let u = try Self.unit("Deploy/systemd/corrald.service")
        #expect(u["Type"] == ["notify"])
        #expect(u["ExecStart"] == ["/usr/sbin/corrald"], "settings come from /etc/corral/corral.conf")
        #expect(u["Restart"] == ["always"], "a clean exit with guests running must be restarted too")
        #expect(u["StartLimitIntervalSec"] == ["0"], "no start limit may stop the restarts")
        let restart = try #require(u["RestartSec"]?.first)
        let ms = restart.hasSuffix("ms") ? Int(restart.dropLast(2)) : Int(restart).map { $0 * 1000 }
        #expect(try #require(ms) < 1000, "RestartSec \(restart) must be below the shortest lease (1000 ms)")
        #expect(u["RestartPreventExitStatus"] == ["2"], "exit status 2 is a configuration error only")
        #expect(u["TimeoutStartSec"] == ["infinity"])
        for strong in ["Requires", "BindsTo", "PartOf", "Requisite"] {
            #expect(u[strong] == nil, "\(strong)= would stop corrald with Corosync or libvirtd, resetting a host with guests")
        }
        let after = u["After"]?.joined(separator: " ") ?? ""
        #expect(after.contains("corosync.service") && after.contains("libvirtd.service"))
        #expect(u["KillMode"] == nil || u["KillMode"] == ["control-group"] || u["KillMode"] == ["mixed"])
    }

    @Test func metricsUnitsAndTmpfiles() throws {
        let service = try Self.unit("Deploy/systemd/corral-metrics.service")
        #expect(service["ExecStart"] == ["/usr/bin/corral metrics --textfile /var/lib/prometheus/node-exporter/corral.prom"])
        #expect(service["SuccessExitStatus"] == ["3"], "corrald unreachable writes corral_up 0 and exits 3")
        #expect(service["Type"] == ["oneshot"])
        let timer = try Self.unit("Deploy/systemd/corral-metrics.timer")
        #expect(timer["OnUnitActiveSec"] == ["15s"])
        let tmpfiles = try Self.read("Deploy/tmpfiles/corral.conf").split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(tmpfiles == ["r! /var/lib/corral/lease-deadline"], "removed at boot only, never while corrald runs")
    }

    /// corrald's exit statuses that the unit's RestartPreventExitStatus=2 relies on.
    @Test func corraldRefusesABadConfigWithExitStatusTwo() throws {
        let corrald = Self.buildDirectory + "/corrald"
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = scratch.path + "/corral.conf"
        try "name = kvm1\nvcpus = many\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = Self.run(corrald, ["--config", file])
        #expect(bad.status == 2)
        #expect(bad.stderr == "corrald: \(file):2: vcpus takes a positive whole number, not many\n")
        let unknownFlag = Self.run(corrald, ["--config", "none", "--frobnicate", "1"])
        #expect(unknownFlag.status == 2 && unknownFlag.stderr.hasPrefix("corrald: unknown option --frobnicate"))
        try "name = kvm1\nvcpus = 4\n".write(toFile: file, atomically: true, encoding: .utf8)
        let check = Self.run(corrald, ["--config", file, "--memory", "2048", "--check-config"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("vcpus = 4  # \(file):2\n") && check.stdout.contains("memory = 2048  # command line\n"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/groff")),
          arguments: ["corral.8", "corrald.8", "corral.conf.5"])
    func manPagesFormatWithoutWarnings(page: String) {
        let result = Self.run("/usr/bin/groff", ["-man", "-Tutf8", "-z", "-ww", Self.root + "/Deploy/man/" + page])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test func installStagesTheDebianLayoutAndKeepsAnExistingConfig() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let stage = scratch.path + "/root"
        let first = Self.run(Self.root + "/Deploy/install", ["--bin", Self.buildDirectory, "--destdir", stage])
        #expect(first.status == 0, "\(first.stderr)")
        for path in ["/usr/sbin/corrald", "/usr/bin/corral", "/etc/systemd/system/corrald.service",
                     "/etc/systemd/system/corral-metrics.timer", "/etc/tmpfiles.d/corral.conf", "/etc/corral/corral.conf",
                     "/usr/share/man/man8/corral.8.gz", "/usr/share/man/man8/corrald.8.gz", "/usr/share/man/man5/corral.conf.5.gz",
                     "/usr/share/bash-completion/completions/corral"] {
            #expect(FileManager.default.fileExists(atPath: stage + path), "\(path) not installed")
        }
        let state = try FileManager.default.attributesOfItem(atPath: stage + "/var/lib/corral")
        #expect((state[.posixPermissions] as? Int) == 0o700)
        try "name = mine\n".write(toFile: stage + "/etc/corral/corral.conf", atomically: true, encoding: .utf8)
        let second = Self.run(Self.root + "/Deploy/install", ["--bin", Self.buildDirectory, "--destdir", stage])
        #expect(second.status == 0)
        #expect(try String(contentsOfFile: stage + "/etc/corral/corral.conf", encoding: .utf8) == "name = mine\n")
        #expect(FileManager.default.fileExists(atPath: stage + "/etc/corral/corral.conf.dist"))
        #expect(Self.run(Self.root + "/Deploy/install", ["--bogus"]).status == 2)
        #expect(Self.run(Self.root + "/Deploy/install", ["--bin", scratch.path, "--destdir", stage]).status == 1)
    }
}
