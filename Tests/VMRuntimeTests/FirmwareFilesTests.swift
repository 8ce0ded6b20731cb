import Foundation
import DiskImages
import HostOS
import Testing
import VMSpec
@testable import VMRuntime

/// Firmware found the documented way: in this machine's descriptors (Debian's
/// ovmf and qemu-efi-aarch64), and in made-up directories for the rules.
@Suite struct FirmwareFilesTests {
    static let system = ["/etc/qemu/firmware", "/usr/share/qemu/firmware"]

    @Test func debianOVMFAndAAVMFWithoutSecureBoot() throws {
        for machine in ["q35", "pc-q35-7.2", "pc"] {
            let x86 = try FirmwareFiles.find(architecture: .amd64, machineType: machine, directories: Self.system)
            #expect(x86.code == "/usr/share/OVMF/OVMF_CODE_4M.fd", "\(machine)")
            #expect(x86.varsTemplate == "/usr/share/OVMF/OVMF_VARS_4M.fd")
            #expect(x86.descriptor.hasSuffix("60-edk2-x86_64.json"))
        }
        let arm = try FirmwareFiles.find(architecture: .arm64, machineType: "virt", directories: Self.system)
        #expect(arm.code == "/usr/share/AAVMF/AAVMF_CODE.fd")
        #expect(arm.varsTemplate == "/usr/share/AAVMF/AAVMF_VARS.fd")
        #expect(FileManager.default.fileExists(atPath: arm.code))
    }

    static func descriptor(arch: String, machines: [String], code: String, features: [String] = []) -> String {
        let m = machines.map { "\"\($0)\"" }.joined(separator: ",")
        let f = features.map { "\"\($0)\"" }.joined(separator: ",")
        return """
            {"interface-types": ["uefi"], "mapping": {"device": "flash", "executable": {"filename": "\(code)", "format": "raw"},
             "nvram-template": {"filename": "\(code).vars", "format": "raw"}},
             "targets": [{"architecture": "\(arch)", "machines": [\(m)]}], "features": [\(f)], "tags": []}
            """
    }

    @Test func priorityOverridesAndFilters() throws {
        let root = NSTemporaryDirectory() + "vt-fw-\(UInt32.random(in: 0...UInt32.max))"
        let etc = root + "/etc", share = root + "/share"
        for d in [etc, share] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: root) }
        func write(_ path: String, _ text: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        try write(share + "/10-secure.json", Self.descriptor(arch: "x86_64", machines: ["pc-q35-*"], code: "/secure", features: ["secure-boot", "requires-smm"]))
        try write(share + "/20-arm.json", Self.descriptor(arch: "aarch64", machines: ["virt-*"], code: "/arm"))
        try write(share + "/30-i440fx.json", Self.descriptor(arch: "x86_64", machines: ["pc-i440fx-*"], code: "/i440fx"))
        try write(share + "/40-q35.json", Self.descriptor(arch: "x86_64", machines: ["pc-q35-*"], code: "/q35"))
        try write(share + "/50-q35.json", Self.descriptor(arch: "x86_64", machines: ["pc-q35-*"], code: "/q35-later"))
        try write(share + "/05-broken.json", "{not json")
        let dirs = [etc, share]
        #expect(try FirmwareFiles.find(architecture: .amd64, machineType: "q35", directories: dirs).code == "/q35")
        #expect(try FirmwareFiles.find(architecture: .amd64, machineType: "pc-i440fx-7.2", directories: dirs).code == "/i440fx")
        #expect(try FirmwareFiles.find(architecture: .arm64, machineType: "virt", directories: dirs).code == "/arm")
        // A file of the same name in an earlier directory replaces it; an empty one hides it.
        try write(etc + "/40-q35.json", Self.descriptor(arch: "x86_64", machines: ["pc-q35-*"], code: "/etc-q35"))
        #expect(try FirmwareFiles.find(architecture: .amd64, machineType: "q35", directories: dirs).code == "/etc-q35")
        try write(etc + "/40-q35.json", "")
        #expect(try FirmwareFiles.find(architecture: .amd64, machineType: "q35", directories: dirs).code == "/q35-later")
        // Only Secure Boot firmware left: not found, and the message says what to install.
        try write(etc + "/50-q35.json", "")
        do {
            _ = try FirmwareFiles.find(architecture: .amd64, machineType: "q35", directories: dirs)
            Issue.record("found firmware where only Secure Boot firmware is")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.description.contains("install Debian's ovmf"))
        }
    }

    /// A VM's vars: a qcow2 (so `savevm` can snapshot them) holding the
    /// template's bytes, made once and kept; an older raw copy is converted
    /// instead of the template (its boot entries kept) and then removed.
    @Test func varsAreConvertedOnceAndKept() async throws {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map { String($0) + "/qemu-img" }
        let qemuImg = QemuImg(executable: try #require(path.first(where: { access($0, X_OK) == 0 })))
        let dir = NSTemporaryDirectory() + "vt-vars-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let template = dir + "/template.fd"
        try Data(repeating: 0xAB, count: 65536).write(to: URL(fileURLWithPath: template))
        chmod(template, 0o444)
        let fw = FirmwareFiles(code: "/code", varsTemplate: template, descriptor: "test")
        let vars = dir + "/vm-vars.qcow2"
        #expect(try await fw.makeVars(at: vars, qemuImg: qemuImg))
        let info = try await qemuImg.info(path: vars)
        #expect(info.format == "qcow2" && info.virtualSize == 65536, "\(info)")
        #expect(try Self.rawBytes(of: vars, qemuImg) == Data(repeating: 0xAB, count: 65536))
        #expect(access(vars, W_OK) == 0)
        // The guest's writes survive the next start.
        let written = try FileManager.default.attributesOfItem(atPath: vars)[.modificationDate] as? Date
        #expect(try await fw.makeVars(at: vars, qemuImg: qemuImg) == false)
        #expect(try FileManager.default.attributesOfItem(atPath: vars)[.modificationDate] as? Date == written)

        // An older vtarget's raw vars: converted, not the template, then gone.
        let previous = dir + "/old-vars.fd"
        try Data(repeating: 0x01, count: 65536).write(to: URL(fileURLWithPath: previous))
        let migrated = dir + "/migrated.qcow2"
        #expect(try await fw.makeVars(at: migrated, qemuImg: qemuImg, previous: previous))
        #expect(try Self.rawBytes(of: migrated, qemuImg) == Data(repeating: 0x01, count: 65536))
        #expect(!FileManager.default.fileExists(atPath: previous))

        // A template that is not there: an error naming it, nothing half-written left.
        let missing = FirmwareFiles(code: "/code", varsTemplate: dir + "/absent.fd", descriptor: "test")
        await #expect(throws: RuntimeError.self) { try await missing.makeVars(at: dir + "/other.qcow2", qemuImg: qemuImg) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/other.qcow2") && !FileManager.default.fileExists(atPath: dir + "/other.qcow2.partial"))
    }

    /// Through templates: each VM's vars its own file, the template's bytes,
    /// converted once; a changed template is converted again; an older
    /// vtarget's vars are converted, never taken from the cache.
    @Test func varsFromTemplates() async throws {
        let qemuImg = QemuImg(executable: "/usr/bin/qemu-img")
        let dir = NSTemporaryDirectory() + "vt-vars-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let templates = TemplateCache(stateDirectory: dir + "/state")
        let entries = { ((try? FileManager.default.contentsOfDirectory(atPath: templates.directory)) ?? []).count }
        let template = dir + "/template.fd"
        try Data(repeating: 0xAB, count: 65536).write(to: URL(fileURLWithPath: template))
        let fw = FirmwareFiles(code: "/code", varsTemplate: template, descriptor: "test")
        for vm in ["a", "b"] {
            #expect(try await fw.makeVars(at: dir + "/\(vm).qcow2", qemuImg: qemuImg, templates: templates))
            #expect(try Self.rawBytes(of: dir + "/\(vm).qcow2", qemuImg) == Data(repeating: 0xAB, count: 65536))
        }
        #expect(entries() == 1)
        var a = stat(), b = stat()
        #expect(stat(dir + "/a.qcow2", &a) == 0 && stat(dir + "/b.qcow2", &b) == 0 && a.st_ino != b.st_ino)
        #expect(a.st_mode & 0o777 == 0o600)
        unlink(template)
        try Data(repeating: 0xCD, count: 65536).write(to: URL(fileURLWithPath: template))
        #expect(try await fw.makeVars(at: dir + "/c.qcow2", qemuImg: qemuImg, templates: templates))
        #expect(try Self.rawBytes(of: dir + "/c.qcow2", qemuImg) == Data(repeating: 0xCD, count: 65536))
        #expect(entries() == 2)
        let previous = dir + "/old-vars.fd"
        try Data(repeating: 0x01, count: 65536).write(to: URL(fileURLWithPath: previous))
        #expect(try await fw.makeVars(at: dir + "/d.qcow2", qemuImg: qemuImg, previous: previous, templates: templates))
        #expect(try Self.rawBytes(of: dir + "/d.qcow2", qemuImg) == Data(repeating: 0x01, count: 65536))
        #expect(entries() == 2)
    }

    /// The guest-visible bytes of a qcow2, through qemu-img itself.
    static func rawBytes(of qcow2: String, _ qemuImg: QemuImg) throws -> Data? {
        let out = qcow2 + ".raw"
        defer { unlink(out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: qemuImg.executable)
        p.arguments = ["convert", "-f", "qcow2", "-O", "raw", qcow2, out]
        try p.run()
        p.waitUntilExit()
        return FileManager.default.contents(atPath: out)
    }
}
