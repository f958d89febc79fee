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
        /// Seeded discrete-event simulation of many nodes running the same core.
        .target(name: "CorralSimulator", dependencies: ["CorralCore"]),
        /// Corosync client libraries (libcpg, libquorum, libvotequorum, libcmap) plus a small C shim.
        .systemLibrary(name: "CCorosync", pkgConfig: "libcpg",
                       providers: [.apt(["libcpg-dev", "libquorum-dev", "libvotequorum-dev", "libcmap-dev"])]),
        /// Thin typed Swift wrapper over CPG, votequorum and cmap.
        .target(name: "CorosyncTransport", dependencies: ["CCorosync"]),
        /// The node agent's shell: agent loop, wire format, control socket, persistence.
        .target(name: "CorralAgent", dependencies: ["CorralCore", "CorosyncTransport"]),
        .executableTarget(name: "corral", dependencies: ["CorralCore", "CorralSimulator", "CorralAgent"]),
        .executableTarget(name: "corrald", dependencies: ["CorralAgent"]),
        .executableTarget(name: "corral-bench", dependencies: ["CorralCore", "CorralSimulator", "CorralAgent"]),
        .testTarget(name: "CorralCoreTests", dependencies: ["CorralCore"]),
        .testTarget(name: "CorralSimulatorTests", dependencies: ["CorralSimulator", "CorralCore"], resources: [.copy("Golden")]),
        .testTarget(name: "CorralAgentTests", dependencies: ["CorralAgent", "CorralCore"]),
        .testTarget(name: "CorralIntegrationTests", dependencies: ["CorralAgent", "CorralCore"]),
    ],
    swiftLanguageModes: [.v6]
)
