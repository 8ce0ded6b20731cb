import Foundation
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

    @Test func varsAreCopiedOnceAndKept() throws {
        let dir = NSTemporaryDirectory() + "vt-vars-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let template = dir + "/template.fd"
        try Data(repeating: 0xAB, count: 4096).write(to: URL(fileURLWithPath: template))
        chmod(template, 0o444)
        let fw = FirmwareFiles(code: "/code", varsTemplate: template, descriptor: "test")
        let vars = dir + "/vm-vars.fd"
        #expect(try fw.makeVars(at: vars))
        #expect(FileManager.default.contents(atPath: vars) == Data(repeating: 0xAB, count: 4096))
        #expect(access(vars, W_OK) == 0)
        // The guest's writes survive the next start.
        try Data(repeating: 0x01, count: 16).write(to: URL(fileURLWithPath: vars))
        #expect(try fw.makeVars(at: vars) == false)
        #expect(FileManager.default.contents(atPath: vars)?.count == 16)
        // A template that is not there: an error naming it, nothing half-written left.
        let missing = FirmwareFiles(code: "/code", varsTemplate: dir + "/absent.fd", descriptor: "test")
        #expect(throws: RuntimeError.self) { try missing.makeVars(at: dir + "/other.fd") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/other.fd") && !FileManager.default.fileExists(atPath: dir + "/other.fd.partial"))
    }
}
