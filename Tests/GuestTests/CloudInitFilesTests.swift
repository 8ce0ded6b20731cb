import DiskImages
import Foundation
import TestSupport
import Testing

let guestGoldenDir = repoRoot + "/Tests/GuestTests/Golden"

/// One seed per golden directory: Golden/NAME/ holds exactly its files.
struct SeedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var flavor: CloudInitFiles.Flavor
    var instanceID: String
    var hostname: String
    var userData: String?
    var networkConfig: String?
    var testDescription: String { name }

    static let all: [SeedCase] = [
        SeedCase(name: "nocloud-full", flavor: .noCloud, instanceID: "vm1.default", hostname: "vm1",
                 userData: "#cloud-config\nhostname: vm1\nruncmd:\n  - echo hi > /tmp/hi\n",
                 networkConfig: "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"),
        SeedCase(name: "nocloud-minimal", flavor: .noCloud, instanceID: "vm1.default", hostname: "vm1.example.org"),
        // A hostname YAML would read as a number, an id with YAML syntax in it.
        SeedCase(name: "nocloud-quoted", flavor: .noCloud, instanceID: "id: \"7\" \\ x", hostname: "1234"),
        SeedCase(name: "configdrive-full", flavor: .configDrive, instanceID: "vm1.default", hostname: "vm1",
                 userData: "#!/bin/sh\necho hello\n",
                 networkConfig: "{\"links\": [], \"networks\": [], \"services\": []}\n"),
        SeedCase(name: "configdrive-minimal", flavor: .configDrive, instanceID: "a/b \"c\"", hostname: "vm-2"),
    ]

    func files() throws -> CloudInitFiles {
        try CloudInitFiles(flavor: flavor, instanceID: instanceID, hostname: hostname,
                           userData: userData.map { Array($0.utf8) }, networkConfig: networkConfig)
    }
}

/// Every regular file under `dir`, relative to it.
func filesUnder(_ dir: String) -> [String] {
    let e = FileManager.default.enumerator(atPath: dir)
    var out: [String] = []
    while let p = e?.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.append(p) }
    }
    return out.sorted()
}

@Suite struct CloudInitFilesTests {
    /// UPDATE_GOLDEN=1 rewrites the directory after a change you checked.
    @Test(arguments: SeedCase.all)
    func filesMatchGolden(_ c: SeedCase) throws {
        let seed = try c.files()
        let dir = guestGoldenDir + "/" + c.name
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try? FileManager.default.removeItem(atPath: dir)
            for f in seed.files {
                let path = dir + "/" + f.path
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(f.contents).write(to: URL(fileURLWithPath: path))
            }
            return
        }
        #expect(seed.files.map(\.path).sorted() == filesUnder(dir), "the seed's files differ from \(dir)")
        for f in seed.files {
            let golden = FileManager.default.contents(atPath: dir + "/" + f.path).map { [UInt8]($0) }
            #expect(f.contents == golden, "\(c.name)/\(f.path) differs from the golden file; rerun with UPDATE_GOLDEN=1 after checking the change")
        }
    }

    @Test func goldenDirectoriesAllHaveACase() throws {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: guestGoldenDir).sorted()
        #expect(dirs == SeedCase.all.map(\.name).sorted())
    }

    @Test func labelsAreTheOnesCloudInitLooksFor() {
        #expect(CloudInitFiles.Flavor.noCloud.volumeLabel == "cidata")
        #expect(CloudInitFiles.Flavor.configDrive.volumeLabel == "config-2")
    }

    /// KubeVirt's default: stable per VM, different between VMs and namespaces.
    @Test func instanceIDIsStablePerNameAndNamespace() {
        #expect(CloudInitFiles.stableInstanceID(name: "vm1", namespace: "default") == "vm1.default")
        #expect(CloudInitFiles.stableInstanceID(name: "vm1", namespace: "default") == CloudInitFiles.stableInstanceID(name: "vm1", namespace: "default"))
        #expect(CloudInitFiles.stableInstanceID(name: "vm1", namespace: "other") != CloudInitFiles.stableInstanceID(name: "vm1", namespace: "default"))
    }

    /// User data is carried byte for byte (gzip, MIME multipart are not text).
    @Test func binaryUserDataIsKeptAsIs() throws {
        let gzip: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0xFF, 0x00, 0x0A]
        for flavor in CloudInitFiles.Flavor.allCases {
            let seed = try CloudInitFiles(flavor: flavor, instanceID: "i", hostname: "h", userData: gzip, networkConfig: nil)
            #expect(seed.files.first { $0.path.hasSuffix("user-data") || $0.path.hasSuffix("user_data") }?.contents == gzip)
        }
    }

    static let badHostnames = ["", "-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "h\u{e4}st", String(repeating: "a", count: 64),
                               Array(repeating: "abcdefghi", count: 26).joined(separator: ".")]

    @Test(arguments: badHostnames)
    func badHostnamesAreRefused(_ hostname: String) {
        for flavor in CloudInitFiles.Flavor.allCases {
            do {
                _ = try CloudInitFiles(flavor: flavor, instanceID: "i", hostname: hostname, userData: nil, networkConfig: nil)
                Issue.record("hostname '\(hostname)' was accepted")
            } catch {
                #expect(error.code == .badInput && error.field == "hostname", "\(error)")
                #expect(error.message.contains("letters, digits and '-'"), "says what is valid: \(error)")
            }
        }
    }

    @Test(arguments: ["", "a\nb", "tab\there", "del\u{7F}", String(repeating: "x", count: 256)])
    func badInstanceIDsAreRefused(_ id: String) {
        for flavor in CloudInitFiles.Flavor.allCases {
            do {
                _ = try CloudInitFiles(flavor: flavor, instanceID: id, hostname: "h", userData: nil, networkConfig: nil)
                Issue.record("instance-id \(id.debugDescription) was accepted")
            } catch {
                #expect(error.code == .badInput && error.field == "instanceID", "\(error)")
            }
        }
    }

    @Test(arguments: ["not json", "[1, 2]", "{\"links\": [", "version: 2\nethernets: {}\n"])
    func configDriveNetworkDataMustBeAJSONObject(_ data: String) {
        do {
            _ = try CloudInitFiles(flavor: .configDrive, instanceID: "i", hostname: "h", userData: nil, networkConfig: data)
            Issue.record("network data \(data.debugDescription) was accepted")
        } catch {
            #expect(error.code == .badInput && error.field == "networkData", "\(error)")
            #expect(error.message.contains("JSON object"), "\(error)")
        }
    }

    @Test func longestValidNamesAreAccepted() throws {
        let label = String(repeating: "a", count: 63)
        let host = [label, label, label, String(repeating: "b", count: 61)].joined(separator: ".")
        #expect(host.utf8.count == 253)
        _ = try CloudInitFiles(flavor: .noCloud, instanceID: String(repeating: "x", count: 255), hostname: host, userData: nil, networkConfig: nil)
    }
}
