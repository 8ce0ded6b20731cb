// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "vtarget",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vtarget", targets: ["vtarget"]),
        .executable(name: "vtarget-sandbox-probe", targets: ["vtarget-sandbox-probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // System libraries. No pkgConfig: SwiftPM would put its -L/usr/lib/x86_64-linux-gnu ahead of
        // Sources/vtarget/static-libs on the release link (see its README).
        .systemLibrary(name: "CYAML", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        // fork/exec with nothing allocating between the two.
        .target(name: "CSpawn", exclude: ["README.md"]),

        // Pure modules: no processes, no sockets.
        .target(name: "YAMLTree", dependencies: ["CYAML"], exclude: ["README.md"]),
        .target(name: "MachineCatalog", dependencies: ["YAMLTree"], exclude: ["README.md"]),
        // The kinds: names, columns, delete order; label selectors.
        .target(name: "ResourceKit", dependencies: ["YAMLTree"], exclude: ["README.md"]),
        .target(name: "VMSpec", dependencies: ["YAMLTree", "MachineCatalog", "ResourceKit"], exclude: ["README.md"]),
        .target(name: "TargetSpec", dependencies: ["YAMLTree", "MachineCatalog", "ResourceKit", "VMSpec"], exclude: ["README.md"]),
        .target(name: "ReplayFormat", exclude: ["README.md"]),
        .target(name: "QEMULaunch", dependencies: ["TargetSpec", "MachineCatalog"], exclude: ["README.md"]),
        .target(name: "VMLaunch", dependencies: ["VMSpec", "QEMULaunch", "MachineCatalog", "ResourceKit", "YAMLTree"], exclude: ["README.md"]),
        // CRDs and Kubernetes manifests for the board kinds.
        .target(name: "KubeRender", dependencies: ["TargetSpec", "VMSpec", "ResourceKit", "MachineCatalog", "YAMLTree"], exclude: ["README.md"]),
        .target(name: "QMP", dependencies: [.product(name: "NIOCore", package: "swift-nio")], exclude: ["README.md"]),
        .target(name: "CANProtocol", exclude: ["README.md"]),
        // What a supervisor and a shim agree on: status, record, layout, arguments.
        .target(name: "InstanceContract", exclude: ["README.md"]),
        // A run's decisions: events in, actions out.
        .target(name: "SessionCore", dependencies: ["InstanceContract"], exclude: ["README.md"]),

        // IO modules.
        .target(name: "Sandbox", dependencies: ["CSpawn", "CSeccomp", "InstanceContract"], exclude: ["README.md"]),
        // File descriptors, processes, /proc, runtime directories, signals.
        .target(name: "HostOS", dependencies: ["Sandbox", "InstanceContract"], exclude: ["README.md"]),
        .target(name: "Endpoints", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            "QMP", "CANProtocol",
        ], exclude: ["README.md"]),
        // qemu-img, the content-addressed image store, OCI pulls (the only code that fetches).
        .target(name: "DiskImages", dependencies: [
            "Sandbox", "HostOS",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], exclude: ["README.md"]),
        .target(name: "TargetRuntime", dependencies: [
            "DiskImages", "QEMULaunch", "TargetSpec", "MachineCatalog", "QMP", "Endpoints", "Sandbox", "InstanceContract", "HostOS", "SessionCore",
            "CANProtocol", "VMSpec", "VMLaunch", "VMRuntime",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], exclude: ["README.md"]),
        // What a VM needs from the host (firmware) and, next, the VM driver.
        .target(name: "VMRuntime", dependencies: ["VMSpec", "VMLaunch", "DiskImages", "HostOS", "InstanceContract"], exclude: ["README.md"]),
        // The control API's models and client (the CLI side).
        .target(name: "ControlAPI", dependencies: [
            "InstanceContract", "HostOS",
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], exclude: ["README.md"]),
        // Recorded runs: writing, opening and checking .vtb bundles.
        .target(name: "ReplayRuntime", dependencies: [
            "ReplayFormat", "TargetRuntime", "HostOS", "Sandbox", .product(name: "Crypto", package: "swift-crypto"),
        ], exclude: ["README.md"]),
        // The per-user supervisor: state in SQLite, shims, the HTTP server.
        .target(name: "Supervisor", dependencies: [
            "ControlAPI", "TargetRuntime", "TargetSpec", "MachineCatalog", "YAMLTree", "Sandbox", "CSpawn", "QMP", "InstanceContract", "ResourceKit", "VMSpec", "VMRuntime", "HostOS",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], exclude: ["README.md"]),
        // A directory of YAML as the truth: sync, diff, prune (through the API only).
        .target(name: "GitOpsSync", dependencies: [
            "ControlAPI", "ResourceKit", "YAMLTree", "HostOS", "Sandbox", "InstanceContract",
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], exclude: ["README.md"]),
        .target(name: "VTargetCommands", dependencies: [
            "GitOpsSync", "ControlAPI", "Supervisor", "TargetRuntime", "DiskImages", "QEMULaunch", "TargetSpec", "MachineCatalog", "ResourceKit", "YAMLTree", "QMP", "Sandbox", "Endpoints",
            "InstanceContract", "HostOS", "KubeRender", "SessionCore", "VMLaunch", "VMRuntime", "ReplayFormat", "ReplayRuntime",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], exclude: ["README.md"]),
        // Linked at a fixed address (not PIE) in release: with the Swift runtime and Foundation
        // linked in, a PIE's 145,000 relocations dirty 1.5 MiB of every process's pages; fixed,
        // those pages stay the file's, shared by every shim (scripts/bench_supervisor.py). Not in
        // debug, whose runtime is shared: there glibc warns on stderr of each protected function
        // of libswiftCore whose address a non-PIE takes.
        .executableTarget(name: "vtarget", dependencies: ["VTargetCommands"], exclude: ["README.md", "exports.map", "static-libs"],
                          linkerSettings: [.unsafeFlags(["-Xclang-linker", "-no-pie",
                                                         "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/vtarget/exports.map",
                                                         "-L", "\(Context.packageDirectory)/Sources/vtarget/static-libs"],
                                                        .when(configuration: .release))]),
        // Tries what the sandbox denies; used by `vtarget doctor` and the tests.
        // Linked without the Swift runtime it never calls: it runs inside QEMU's minimal root, which has no /opt/swift.
        .executableTarget(name: "vtarget-sandbox-probe", path: "Sources/SandboxProbe", exclude: ["README.md"],
                          linkerSettings: [.unsafeFlags(["-static-stdlib"])]),

        .target(name: "TestSupport", dependencies: ["MachineCatalog"], path: "Tests/TestSupport"),
        .testTarget(name: "YAMLTreeTests", dependencies: ["YAMLTree", "TestSupport"]),
        .testTarget(name: "ResourceKitTests", dependencies: ["ResourceKit", "YAMLTree"]),
        .testTarget(name: "ReplayFormatTests", dependencies: ["ReplayFormat"]),
        .testTarget(name: "TargetSpecTests", dependencies: ["TargetSpec", "VMSpec", "MachineCatalog", "ResourceKit", "YAMLTree", "TestSupport"],
                    exclude: ["BadInputs"]),
        .testTarget(name: "VMSpecTests", dependencies: ["VMSpec", "TargetSpec", "MachineCatalog", "ResourceKit", "YAMLTree", "TestSupport"],
                    exclude: ["BadInputs"]),
        .testTarget(name: "QEMULaunchTests", dependencies: ["QEMULaunch", "TargetSpec", "MachineCatalog", "YAMLTree", "TestSupport"],
                    exclude: ["Golden"]),
        .target(name: "VMLaunchCases", dependencies: ["VMLaunch", "VMSpec", "ResourceKit", "YAMLTree"], path: "Tests/VMLaunchCases"),
        .testTarget(name: "VMLaunchTests", dependencies: ["VMLaunch", "VMLaunchCases", "VMSpec", "QEMULaunch", "ResourceKit", "YAMLTree", "TestSupport"],
                    exclude: ["Golden"]),
        .testTarget(name: "VMRuntimeTests", dependencies: ["VMRuntime", "VMSpec", "HostOS", "DiskImages", "VMLaunch", "VMLaunchCases"]),
        .testTarget(name: "KubeRenderTests", dependencies: ["KubeRender", "TargetSpec", "ResourceKit", "MachineCatalog", "YAMLTree", "TestSupport"],
                    exclude: ["Golden"]),
        .testTarget(name: "CANProtocolTests", dependencies: ["CANProtocol"]),
        .testTarget(name: "InstanceContractTests", dependencies: ["InstanceContract"]),
        .testTarget(name: "ControlAPITests", dependencies: ["ControlAPI"]),
        .testTarget(name: "SessionCoreTests", dependencies: ["SessionCore", "InstanceContract"]),
        .testTarget(name: "EndpointsTests", dependencies: ["Endpoints", "CANProtocol", "QMP", .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "QMPTests", dependencies: ["QMP", "Sandbox", .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "DiskImagesTests", dependencies: ["DiskImages"], exclude: ["Golden"]),
        .testTarget(name: "GitOpsSyncTests", dependencies: ["GitOpsSync", "ControlAPI", "ResourceKit", "YAMLTree"]),
        .testTarget(name: "SupervisorUnitTests", dependencies: ["Supervisor", "InstanceContract", "ControlAPI", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "IntegrationTests", dependencies: ["VTargetCommands", "GitOpsSync", "TargetRuntime", "InstanceContract", "ControlAPI", "DiskImages", "QMP", "Sandbox", "QEMULaunch", "TargetSpec", "MachineCatalog", "ResourceKit", "TestSupport", "HostOS", "VMLaunch", "VMLaunchCases", "VMRuntime", "ReplayFormat", "ReplayRuntime", .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "ArgumentParser", package: "swift-argument-parser")],
                    exclude: ["Clients", "CorpusGolden"]),
        // cloud-init seeds and the test guests of scripts/build-test-guest.sh, booted in QEMU.
        .testTarget(name: "GuestTests", dependencies: ["DiskImages", "HostOS", "Sandbox", "TestSupport"], exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v6]
)

// Metadata of concrete generic types by accessor calls, not by demangling a
// mangled name at first use: the runtime's first-use demangling, and the
// scans of 11,500 conformance records it makes to check generic
// requirements, were a fifth of `vtarget run`'s time before QEMU's exec.
// Measured: exec -> QEMU's exec 6.68 -> 6.34 ms (50 interleaved runs), for a
// binary 160 KB bigger. (-prespecialize-generic-metadata added 0.04 ms more: not used.)
for target in package.targets where target.type != .system && target.name != "CSpawn" {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"]),
    ]
}
