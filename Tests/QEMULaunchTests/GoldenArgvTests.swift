import Foundation
import MachineCatalog
import TestSupport
import Testing
import YAMLTree
@testable import QEMULaunch
@testable import TargetSpec

let goldenDir = repoRoot + "/Tests/QEMULaunchTests/Golden"

/// Plans every target in `text` the way `run` would, but with drive images
/// given rather than read: ConfigMap data is taken to be ELF.
func plans(_ text: String, file: String, options: DecodeOptions = DecodeOptions()) throws -> [LaunchPlan] {
    let cat = try builtInCatalog()
    let decoded = try ResourceDecoder(catalog: cat, options: options)
        .decode([SourceFile(path: file, directory: "/work/proj", bytes: Array(text.utf8))])
    let planner = LaunchPlanner(host: HostFacts(architecture: .x86_64, kvmUsable: false))
    return try decoded.resources.compactMap { r -> LaunchPlan? in
        guard case .target(let t) = r else { return nil }
        let dir = "/run/vt/\(t.metadata.name)"
        let drives = t.qemu.drives.map { d -> ResolvedDrive in
            switch d.source {
            case .configMap: return ResolvedDrive(drive: d, path: dir + "/drive-\(d.name).elf", format: .elf)
            case .file(let p), .hostPath(let p):
                return ResolvedDrive(drive: d, path: p, format: ImageFormat(d.format, sniffed: []))
            case .emptyDisk: return ResolvedDrive(drive: d, path: dir + "/disk-\(d.name).qcow2", format: .qcow2)
            }
        }
        return try planner.plan(t, profile: cat.lookup(t.qemu.profileName)!, drives: drives, instanceDirectory: dir)
    }
}

/// Compares with Golden/NAME.argv (one argument per line, JSON-escaped so
/// newlines stay visible); UPDATE_GOLDEN=1 rewrites the files.
func checkGolden(_ name: String, _ plans: [LaunchPlan]) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let text = plans.map { p in p.argv.map { String(decoding: try! encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") }
        .joined(separator: "\n---\n") + "\n"
    let path = goldenDir + "/\(name).argv"
    if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOfFile: path, encoding: .utf8)
    #expect(text == expected, "argv for \(name) differs from \(path); rerun with UPDATE_GOLDEN=1 after checking the change")
}

@Suite struct GoldenArgvTests {
    static let examples: [String] = {
        var out: [String] = []
        let e = FileManager.default.enumerator(atPath: repoRoot + "/examples")
        while let f = e?.nextObject() as? String { if f.hasSuffix(".yaml") { out.append(f) } }
        return out.sorted()
    }()

    @Test(arguments: examples)
    func example(_ file: String) throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/" + file, encoding: .utf8)
        try checkGolden("example-" + file.replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: ".yaml", with: ""), plans(text, file: file))
    }

    static let hostile = """
        apiVersion: qemu.kubetarget.dev/v1alpha1
        kind: QemuVirtualTarget
        metadata: {name: hostile}
        spec:
          qemuConfig:
            machine: q35
            memory: 100M
            smp: {cores: 2, sockets: 1, threads: 2}
            drives:
              - name: kernel
                type: kernel
                source: {file: "fw, v=1 'q\\\".elf"}
              - name: disk-a
                type: disk
                format: raw
                source: {file: "disks/a,b=c d\\n.img"}
              - name: scratch
                type: disk
                source: {emptyDisk: {capacity: 1Gi}}
              - name: iso
                type: cdrom
                source: {hostPath: {path: "/srv/x,y.iso"}}
            devices:
              - {name: console, type: serial, index: 1}
              - {name: com1, type: serial}
              - {name: bus-a, type: can, bus: vehicle, uart: 3}
              - {name: dbg, type: gdb}
        """

    @Test func hostilePathsAreEscapedOnceAndOnlyInOptionLists() throws {
        let p = try plans(Self.hostile, file: "hostile.yaml", options: DecodeOptions(allowHostPaths: true))
        try checkGolden("hostile-paths", p)
        let argv = p[0].argv
        // -kernel is not an option list: its path goes through untouched.
        #expect(argv.contains("/work/proj/fw, v=1 'q\".elf"))
        #expect(argv.contains("if=none,id=drive-disk-a,format=raw,file=/work/proj/disks/a,,b=c d\n.img"))
        #expect(argv.contains("if=none,id=drive-iso,format=raw,file=/srv/x,,y.iso,media=cdrom,readonly=on"))
        #expect(argv.contains("-m") && argv[argv.firstIndex(of: "-m")! + 1] == "100000000B")
    }

    @Test func uartAssignmentFillsGapsWithNull() throws {
        let p = try plans(Self.hostile, file: "hostile.yaml", options: DecodeOptions(allowHostPaths: true))[0]
        let serials = p.argv.indices.filter { p.argv[$0] == "-serial" }.map { p.argv[$0 + 1] }
        #expect(serials == ["chardev:serial-com1", "chardev:serial-console", "null", "chardev:can-bus-a"])
        #expect(p.channels.map(\.transport) == [.socketPair(childFD: 3), .fifoPair(path: "/run/vt/hostile/serial-console"),
                                                .fifoPair(path: "/run/vt/hostile/can-bus-a"), .fifoPair(path: "/run/vt/hostile/serial-com1")])
        #expect(p.channels[0].role == .qmp)
        #expect(p.gdbSocketPath == "/run/vt/hostile/gdb.sock")
    }

    @Test func imagesPassedAsFDsFollowTheQMPSocket() throws {
        let cat = try builtInCatalog()
        let decoded = try ResourceDecoder(catalog: cat, options: DecodeOptions(allowHostPaths: true))
            .decode([SourceFile(path: "h.yaml", directory: "/work/proj", bytes: Array(Self.hostile.utf8))])
        guard case .target(let t) = decoded.resources[0] else { return }
        let drives = t.qemu.drives.map { ResolvedDrive(drive: $0, path: "/img/\($0.name)", format: $0.kind == .kernel ? .elf : .raw) }
        let p = try LaunchPlanner(host: HostFacts(), options: LaunchOptions(passImagesAsFDs: true))
            .plan(t, profile: cat.lookup("q35")!, drives: drives, instanceDirectory: "/d")
        #expect(p.passedFiles == [PassedFile(path: "/img/disk-a", childFD: 4, writable: true),
                                  PassedFile(path: "/img/disk-a", childFD: 5, writable: false),
                                  PassedFile(path: "/img/scratch", childFD: 6, writable: true),
                                  PassedFile(path: "/img/scratch", childFD: 7, writable: false),
                                  PassedFile(path: "/img/iso", childFD: 8, writable: false)])
        #expect(p.childFDCount == 9)
        #expect(p.argv.contains("fd=5,set=1"))
        #expect(p.argv.contains("fd=8,set=3"))
        #expect(p.argv.contains("if=none,id=drive-iso,format=raw,file=/dev/fdset/3,media=cdrom,readonly=on"))
        #expect(p.argv.contains("-kernel") && p.argv.contains("/img/kernel"), "firmware is loaded by path")
    }

    @Test func shellRenderingRoundTrips() {
        let words = ["a b", "it's", "x,,y", "new\nline", "$HOME", ""]
        #expect(ShellQuoting.line(words) == "'a b' 'it'\\''s' x,,y 'new\nline' '$HOME' ''")
    }

    @Test func optionEscaping() {
        #expect(QEMUOption("socket", [("id", "a"), ("path", "/x,y")]).description == "socket,id=a,path=/x,,y")
        #expect(QEMUOption.escape(",,") == ",,,,")
    }

    @Test func formatSniffing() {
        #expect(ImageFormat.sniff([0x7F, 0x45, 0x4C, 0x46, 1]) == .elf)
        #expect(ImageFormat.sniff(Array(":10010000214601360121470136007EFE09D2190140\n".utf8)) == .ihex)
        #expect(ImageFormat.sniff([0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3]) == .qcow2)
        #expect(ImageFormat.sniff([0x00, 0x10, 0x00, 0x20]) == .raw)
    }

    @Test func ihexFirmwareUsesTheGenericLoader() throws {
        let text = """
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: hex}
            spec:
              qemuConfig:
                machine: netduinoplus2
                drives: [{name: fw, type: pflash, format: ihex, source: {file: "fw,1.hex"}}]
            """
        let argv = try plans(text, file: "hex.yaml")[0].argv
        #expect(argv.suffix(2) == ["-device", "loader,file=/work/proj/fw,,1.hex"])
    }

    @Test func kvmChoice() throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/x86-pc.yaml", encoding: .utf8)
        let cat = try builtInCatalog()
        let decoded = try ResourceDecoder(catalog: cat).decode([SourceFile(path: "x.yaml", directory: "/", bytes: Array(text.utf8))])
        guard case .target(let t) = decoded.resources[0] else { return }
        let profile = cat.lookup("pc")!
        let kvm = try LaunchPlanner(host: HostFacts(architecture: .x86_64, kvmUsable: true)).plan(t, profile: profile, drives: [], instanceDirectory: "/d")
        #expect(kvm.accel == "kvm")
        let tcg = try LaunchPlanner(host: HostFacts(architecture: .aarch64, kvmUsable: true)).plan(t, profile: profile, drives: [], instanceDirectory: "/d")
        #expect(tcg.accel == "tcg")
    }
}
