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
/// A file source named `*.qcow2` is taken to hold a qcow2 image.
func plans(_ text: String, file: String, options: DecodeOptions = DecodeOptions(), launch: LaunchOptions = LaunchOptions(),
           host: HostFacts = HostFacts(architecture: .x86_64, kvmUsable: false)) throws -> [LaunchPlan] {
    let cat = try builtInCatalog()
    let decoded = try ResourceDecoder(catalog: cat, options: options)
        .decode([SourceFile(path: file, directory: "/work/proj", bytes: Array(text.utf8))])
    let planner = LaunchPlanner(host: host, options: launch)
    return try decoded.resources.compactMap { r -> LaunchPlan? in
        guard case .target(let t) = r else { return nil }
        let dir = "/run/vt/\(t.metadata.name)"
        let drives = t.qemu.drives.map { d -> ResolvedDrive in
            switch d.source {
            case .configMap: return ResolvedDrive(drive: d, path: dir + "/drive-\(d.name).elf", format: .elf)
            case .file(let p), .hostPath(let p):
                return ResolvedDrive(drive: d, path: p, format: ImageFormat(d.format, sniffed: p.hasSuffix(".qcow2") ? [0x51, 0x46, 0x49, 0xFB] : []))
            case .emptyDisk: return ResolvedDrive(drive: d, path: dir + "/disk-\(d.name).qcow2", format: .qcow2)
            }
        }
        return try planner.plan(t, profile: cat.lookup(t.qemu.profileName)!, drives: drives, instanceDirectory: dir)
    }
}

/// Compares `text` with Golden/FILE; UPDATE_GOLDEN=1 rewrites the file.
/// Only files that `GoldenCases` declares may be used, so that
/// `everyGoldenFileHasACase` knows them all.
func checkGolden(_ file: String, _ text: String) throws {
    #expect(GoldenCases.files.contains(file), "\(file) is not declared in GoldenCases")
    let path = goldenDir + "/" + file
    if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOfFile: path, encoding: .utf8)
    #expect(text == expected, "\(file) differs from \(path); rerun with UPDATE_GOLDEN=1 after checking the change")
}

/// Compares with Golden/NAME.argv (one argument per line, JSON-escaped so
/// newlines stay visible; `---` between targets).
func checkGolden(_ name: String, _ plans: [LaunchPlan]) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let text = plans.map { p in p.argv.map { String(decoding: try! encoder.encode($0), as: UTF8.self) }.joined(separator: "\n") }
        .joined(separator: "\n---\n") + "\n"
    try checkGolden(name + ".argv", text)
}

@Suite struct GoldenArgvTests {
    @Test(arguments: GoldenCases.examples)
    func example(_ file: String) throws {
        let text = try String(contentsOfFile: repoRoot + "/examples/" + file, encoding: .utf8)
        try checkGolden(GoldenCases.exampleGolden(file), plans(text, file: file))
    }

    @Test(arguments: GoldenCases.plans)
    func plan(_ c: GoldenCases.Plan) throws {
        try checkGolden(c.name, plans(c.yaml, file: c.name + ".yaml", options: c.options, launch: c.launch))
    }

    /// The planner's refusals, as a user reads them: file:line:col, field, message.
    @Test(arguments: GoldenCases.refusals)
    func refusal(_ c: GoldenCases.Refusal) throws {
        do {
            _ = try plans(c.yaml, file: c.name + ".yaml", host: c.host)
            Issue.record("\(c.name) was planned")
        } catch let e as DiagnosticError {
            try checkGolden(c.name + ".err", e.description + "\n")
        }
    }

    /// A golden no case produces would never fail again: libvirt's rule.
    @Test func everyGoldenFileHasACase() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: goldenDir).filter { !$0.hasPrefix(".") }
        let unused = Set(files).subtracting(GoldenCases.files)
        #expect(unused.isEmpty, "no case uses \(unused.sorted()); remove the files or add cases to GoldenCases")
    }

    static let hostile = GoldenCases.hostile

    @Test func hostilePathsAreEscapedOnceAndOnlyInOptionLists() throws {
        let p = try plans(Self.hostile, file: "hostile.yaml", options: DecodeOptions(allowHostPaths: true))
        let argv = p[0].argv
        // -kernel is not an option list: its path goes through untouched.
        #expect(argv.contains("/work/proj/fw, v=1 'q\".elf"))
        // JSON arguments are not option lists either: no `,,`, JSON escapes only.
        #expect(argv.contains(#"{"driver":"file","filename":"/work/proj/disks/a,b=c d\n.img","node-name":"file-disk-a"}"#))
        #expect(argv.contains(#"{"driver":"raw","file":"file-disk-a","node-name":"fmt-disk-a"}"#))
        #expect(argv.contains(#"{"driver":"file","filename":"/srv/x,y.iso","node-name":"file-iso","read-only":true}"#))
        #expect(argv.contains(#"{"drive":"fmt-iso","driver":"ide-cd","id":"dev-iso"}"#))
        #expect(argv.contains("-m") && argv[argv.firstIndex(of: "-m")! + 1] == "100000000B")
    }

    @Test func drivesAreAddressableByNodeName() throws {
        let p = try plans(Self.hostile, file: "hostile.yaml", options: DecodeOptions(allowHostPaths: true),
                          launch: LaunchOptions(snapshotImage: "/s.qcow2"))[0]
        #expect(p.blockDrives == [
            BlockDrive(name: "disk-a", fileNode: "file-disk-a", formatNode: "fmt-disk-a", deviceID: "dev-disk-a", readOnly: false),
            BlockDrive(name: "scratch", fileNode: "file-scratch", formatNode: "fmt-scratch", deviceID: "dev-scratch", readOnly: false),
            BlockDrive(name: "iso", fileNode: "file-iso", formatNode: "fmt-iso", deviceID: "dev-iso", readOnly: true),
            BlockDrive(name: "vt.snapshot", fileNode: "file-vt.snapshot", formatNode: "fmt-vt.snapshot", deviceID: nil, readOnly: false),
        ])
    }

    /// `readonly: true` reaches QEMU on both nodes of every kind of drive.
    @Test func readOnlyIsHonouredEverywhere() throws {
        let q35 = try plans(GoldenCases.plans.first { $0.name == "readonly-q35" }!.yaml, file: "ro.yaml")[0]
        #expect(q35.argv.contains(#"{"driver":"file","filename":"/work/proj/OVMF_CODE.fd","node-name":"file-ovmf-code","read-only":true}"#))
        #expect(q35.argv.contains(#"{"driver":"raw","file":"file-ovmf-code","node-name":"fmt-ovmf-code","read-only":true}"#))
        #expect(q35.argv.contains("pflash0=fmt-ovmf-code"))
        #expect(q35.argv.contains(#"{"driver":"qcow2","file":"file-base","node-name":"fmt-base","read-only":true}"#))
        #expect(q35.argv.contains(#"{"driver":"raw","file":"file-data","node-name":"fmt-data"}"#))
        #expect(q35.blockDrives.map(\.readOnly) == [true, true, false, true])
        let vexpress = try plans(GoldenCases.plans.first { $0.name == "flash-vexpress-a9" }!.yaml, file: "v.yaml")[0]
        #expect(vexpress.argv.contains("if=pflash,unit=0,format=raw,file=/work/proj/u-boot.bin,node-name=fmt-uboot,file.node-name=file-uboot,read-only=on"))
        // A read-only image is handed over read-only, and only so.
        let fds = try plans(GoldenCases.plans.first { $0.name == "readonly-fdsets" }!.yaml, file: "f.yaml",
                            launch: LaunchOptions(passImagesAsFDs: true))[0]
        #expect(fds.passedFiles == [PassedFile(path: "/work/proj/base.qcow2", childFD: 4, writable: false),
                                    PassedFile(path: "/work/proj/data.img", childFD: 5, writable: true),
                                    PassedFile(path: "/work/proj/data.img", childFD: 6, writable: false)])
    }

    @Test func nodeNamesFollowQEMURules() {
        var names = BlockNodeNames()
        let long = String(repeating: "x", count: 63)
        let a = names.claim("fmt", long), b = names.claim("fmt", long + "y"), c = names.claim("fmt", long)
        for n in [a, b, c] {
            #expect(n.count <= 31 && n.first!.isLetter, "\(n)")
            #expect(n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }, "\(n)")
        }
        #expect(Set([a, b, c]).count == 3)
        #expect(names.claim("fmt", "disk-a") == "fmt-disk-a")
        #expect(BlockNodeNames.sanitized("9 a/b") == "n9_a_b")
        var again = BlockNodeNames()
        #expect(again.claim("fmt", long) == a, "the same drive gets the same name in every plan")
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
        #expect(p.argv.contains(#"{"driver":"file","filename":"/dev/fdset/3","node-name":"file-iso","read-only":true}"#))
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
        let text = targetYAML("hex", """
            machine: netduinoplus2
            drives: [{name: fw, type: pflash, format: ihex, source: {file: "fw,1.hex"}}]
            """)
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
