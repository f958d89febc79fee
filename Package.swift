// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Corral",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "corral", targets: ["corral"]),
        .executable(name: "corrald", targets: ["corrald"]),
        .executable(name: "corral-bench", targets: ["corral-bench"]),
    ],
    targets: [
        /// Pure, deterministic cluster logic: stdlib only, no clock, no I/O, no randomness.
        .target(name: "CorralCore"),
        /// Seeded discrete-event simulation of many nodes running the same agent shell and core.
        .target(name: "CorralSimulator", dependencies: ["CorralCore", "CorralAgent", "CorosyncTransport"]),
        /// Corosync client libraries (libcpg, libquorum, libvotequorum, libcmap) plus a small C shim.
        .systemLibrary(name: "CCorosync", pkgConfig: "libcpg",
                       providers: [.apt(["libcpg-dev", "libquorum-dev", "libvotequorum-dev", "libcmap-dev"])]),
        /// Thin typed Swift wrapper over CPG, votequorum and cmap.
        .target(name: "CorosyncTransport", dependencies: ["CCorosync"]),
        /// libvirt's C API (libvirt.so) plus a small C shim for what Swift cannot call directly.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        /// Thin typed Swift wrapper over libvirt: connection, domains, migration, job stats, events.
        .target(name: "LibvirtClient", dependencies: ["CLibvirt"]),
        /// The Linux watchdog device's ioctls (linux/watchdog.h), which Swift cannot call (variadic).
        .systemLibrary(name: "CWatchdog"),
        /// The node agent's shell: agent loop, wire format, control socket, persistence, hypervisor, fencing.
        .target(name: "CorralAgent", dependencies: ["CorralCore", "CorosyncTransport", "LibvirtClient", "CWatchdog"]),
        /// Drives `Deploy/local-cluster` (real nodes in namespaces) for tests, benchmarks and chaos.
        .target(name: "CorralTestbed", dependencies: ["CorralAgent", "CorralCore"]),
        .executableTarget(name: "corral", dependencies: ["CorralCore", "CorralSimulator", "CorralAgent"]),
        .executableTarget(name: "corrald", dependencies: ["CorralAgent"]),
        .executableTarget(name: "corral-bench", dependencies: ["CorralCore", "CorralSimulator", "CorralAgent", "CorralTestbed"]),
        .testTarget(name: "CorralCoreTests", dependencies: ["CorralCore"]),
        .testTarget(name: "CorralSimulatorTests", dependencies: ["CorralSimulator", "CorralCore", "CorralAgent"], resources: [.copy("Golden")]),
        .testTarget(name: "CorralAgentTests", dependencies: ["CorralAgent", "CorralCore", "CorralTestbed"]),
        .testTarget(name: "CorralIntegrationTests", dependencies: ["CorralAgent", "CorralCore", "CorralTestbed"]),
    ],
    swiftLanguageModes: [.v6]
)
