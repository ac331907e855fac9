// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "RoleMesh",
    // Only Linux is built and tested (CI). macOS is not supported yet: the source is kept portable
    // but has never been compiled there. The line stays as the deployment target a macOS port
    // needs (Synchronization's Atomic and Mutex are macOS 15+); it is not a claim that one works.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rolemesh", targets: ["rolemesh"]),
        .executable(name: "rolemesh-bench", targets: ["rolemesh-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The ecosystem's logging API: the agent's lines go through one LogHandler (RoleMeshPlatform/Log.swift),
        // which implements `log(event:)` (1.16.2; the older entry point is deprecated).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // libsodium (Ed25519, X25519, XChaCha20-Poly1305) from the system: Debian libsodium-dev.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        // Linux headers Glibc does not export (epoll): a header-only system module.
        .systemLibrary(name: "CLinux"),
        // The pure core: wire format, membership, failure detection, routing, config.
        // No sockets, no clocks, no files: everything time- or I/O-related is injected.
        .target(name: "RoleMeshCore", dependencies: ["CSodium"]),
        // An in-memory network in virtual time that drives the real core.
        .target(name: "RoleMeshSimulation", dependencies: ["RoleMeshCore"]),
        // The control socket's typed protocol (requests, replies, task records): what the CLI
        // and the agent both speak, as JSON through FoundationEssentials' coders (never full Foundation:
        // ICU and ~6 MiB of RSS, docs/benchmarks.md).
        .target(name: "RoleMeshControl"),
        // The platform under the shell: the C library, Dispatch and FoundationEssentials (never full
        // Foundation: ICU and ~6 MiB of RSS), exported from one file (Exports.swift); the epoll
        // Poller, AsyncFD, Locked, Spawn, ChildTasks, the clocks and the log. Knows nothing of RoleMesh.
        .target(name: "RoleMeshPlatform", dependencies: ["CLinux", .product(name: "Logging", package: "swift-log")]),
        // A node's directory on disk: node.toml, keys/, state/; the one atomic write and the one writer.
        .target(name: "RoleMeshStorage", dependencies: ["RoleMeshPlatform", "RoleMeshCore", "RoleMeshControl"]),
        // Sockets and addresses: the UDP socket, address resolution, this device's own addresses.
        .target(name: "RoleMeshTransport", dependencies: ["RoleMeshPlatform", "RoleMeshCore", "CLinux"]),
        // This device's resource signals and idleness, read from /proc and /sys.
        .target(name: "RoleMeshProbes", dependencies: ["RoleMeshPlatform", "RoleMeshCore"]),
        // The task channel: encrypted, mutually authenticated TCP between members; handshakes,
        // frames, the pre-auth gate, relayed channels.
        .target(name: "RoleMeshTaskChannel", dependencies: ["RoleMeshPlatform", "RoleMeshCore", "RoleMeshTransport", "RoleMeshControl"]),
        // The agent: composes the core and the targets above; tasks, trust, schedules, services.
        .target(name: "RoleMeshAgent", dependencies: ["RoleMeshPlatform", "RoleMeshStorage", "RoleMeshTransport", "RoleMeshProbes",
                                                      "RoleMeshTaskChannel", "RoleMeshCore", "RoleMeshControl"]),
        // What tests and benchmarks use and the agent never does (capturing loopback traffic).
        .target(name: "RoleMeshTestSupport", dependencies: ["RoleMeshPlatform", "RoleMeshCore"]),
        // The release's version comes from the file VERSION (Plugins/VersionFile).
        .plugin(name: "VersionFile", capability: .buildTool()),
        .executableTarget(
            name: "rolemesh",
            dependencies: [
                "RoleMeshAgent", "RoleMeshControl", "RoleMeshCore", "RoleMeshPlatform", "RoleMeshStorage", "RoleMeshTransport", "RoleMeshTaskChannel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            plugins: ["VersionFile"]
        ),
        .executableTarget(name: "rolemesh-bench", dependencies: ["RoleMeshAgent", "RoleMeshCore", "RoleMeshSimulation", "RoleMeshPlatform",
                                                         "RoleMeshStorage", "RoleMeshTransport", "RoleMeshTaskChannel", "RoleMeshTestSupport"]),
        .testTarget(name: "RoleMeshCoreTests", dependencies: ["RoleMeshCore"]),
        .testTarget(name: "RoleMeshAgentTests", dependencies: ["RoleMeshAgent", "RoleMeshControl", "RoleMeshCore", "RoleMeshPlatform", "RoleMeshStorage", "RoleMeshTransport", "RoleMeshProbes", "RoleMeshTaskChannel", "RoleMeshTestSupport"]),
        .testTarget(name: "RoleMeshSimulationTests", dependencies: ["RoleMeshSimulation", "RoleMeshCore"],
                    resources: [.copy("scenarios")]),
        .testTarget(name: "RoleMeshIntegrationTests", dependencies: ["RoleMeshCore", "RoleMeshAgent", "RoleMeshControl", "RoleMeshPlatform", "RoleMeshStorage", "RoleMeshTransport", "RoleMeshProbes", "RoleMeshTaskChannel", "RoleMeshTestSupport", "rolemesh"]),
    ]
)
