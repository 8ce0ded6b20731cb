@testable import DiskImages
import Testing

@Suite struct ReferenceTests {
    typealias Reference = ImageStore.Reference
    static let hex = String(repeating: "ab", count: 32)

    @Test(arguments: [
        ("cirros", nil, "cirros", nil, nil),
        ("cirros:0.6.2", nil, "cirros", "0.6.2", nil),
        ("library/ubuntu:22.04", nil, "library/ubuntu", "22.04", nil),
        ("quay.io/kubevirt/cirros-container-disk-demo:devel", "quay.io", "kubevirt/cirros-container-disk-demo", "devel", nil),
        ("127.0.0.1:5000/cirros:latest", "127.0.0.1:5000", "cirros", "latest", nil),
        ("localhost/disk", "localhost", "disk", nil, nil),
        ("localhost:5000/a/b/c:V_1.0-rc", "localhost:5000", "a/b/c", "V_1.0-rc", nil),
        ("[::1]:5000/cirros:1", "[::1]:5000", "cirros", "1", nil),
        ("Registry.Example.COM/x", "Registry.Example.COM", "x", nil, nil),
        ("ab__c-d--e_f/g.h", nil, "ab__c-d--e_f/g.h", nil, nil),
        ("a.b/c", "a.b", "c", nil, nil),
        ("localhost:5000", nil, "localhost", "5000", nil),
        ("_underscore_tag:_x", nil, nil, nil, nil),
    ] as [(String, String?, String?, String?, String?)])
    func parses(_ text: String, _ registry: String?, _ repository: String?, _ tag: String?, _ unused: String?) throws {
        if let repository {
            let r = try Reference.parse(text)
            #expect(r.registry == registry)
            #expect(r.repository == repository)
            #expect(r.tag == tag)
            #expect(r.digest == nil)
            #expect(r.description == text)
        } else {
            #expect(throws: ImageStoreError.self) { try Reference.parse(text) }
        }
    }

    @Test func digestsAndDefaults() throws {
        let r = try Reference.parse("127.0.0.1:5000/cirros@sha256:" + Self.hex)
        #expect(r.registry == "127.0.0.1:5000")
        #expect(r.digest?.hex == Self.hex)
        #expect(r.tag == nil)
        #expect(r.effectiveTag == nil, "a digest reference has no implied tag")
        let both = try Reference.parse("cirros:1@sha256:" + Self.hex)
        #expect(both.tag == "1" && both.digest?.hex == Self.hex)
        #expect(try Reference.parse("cirros").effectiveTag == "latest")
        #expect(try Reference.parse("cirros").name == "cirros")
        #expect(try Reference.parse("h.io:1/a/b:t").name == "h.io:1/a/b")
    }

    /// Every refusal is bad input, echoes the text safely and says what is valid.
    @Test(arguments: [
        "", " ", "cirros latest", "Cirros", "cirros:", ":tag", "/cirros", "cirros/", "a//b", "../etc/passwd", "a/../b",
        "./x", "-a", "a-", "a..b", "a___b", "a._b", "cirros:.x", "cirros:-x", "cirros:" + String(repeating: "t", count: 129),
        String(repeating: "a", count: 256), "a@sha256:abc", "a@sha512:" + String(repeating: "0", count: 128),
        "a@sha256:" + String(repeating: "A", count: 64), "a@sha256:" + hex + "@sha256:" + hex, "a@" + "sha256:" + hex + "x",
        "host:0/a", "host:65536/a", "host:99999999/a", "host:/a", "-host.io/a", "host-.io/a", "ho_st.io/a", "[::1/a", "[]/a",
        "[zz::1]:5000/a", "[::1]x/a", "a\nb", "a\u{0}b", "a\u{7f}", "é/a", "a;rm -rf", "a$(x)", "a`x`", "a/b:c/d", "a:b:c",
        "http://127.0.0.1:5000/a", "sha256:" + String(repeating: "0", count: 10) + "/x",
    ])
    func refuses(_ text: String) {
        do {
            let r = try Reference.parse(text)
            Issue.record("accepted \(text.debugDescription) as \(r)")
        } catch {
            #expect(error.code == .badReference)
            #expect(error.message.contains("expected NAME[:TAG]"), "\(error)")
            #expect(!error.message.contains("\n") && !error.message.contains("\u{0}"), "control characters echoed: \(error)")
        }
    }

    @Test func loopbackRegistries() throws {
        for (text, loop) in [("127.0.0.1:5000/a", true), ("localhost:5000/a", true), ("localhost/a", true), ("[::1]:5000/a", true),
                             ("127.0.0.2:5000/a", false), ("localhost.example.com/a", false), ("quay.io/a", false), ("a", false)] {
            #expect(try Reference.parse(text).registryIsLoopback == loop, "\(text)")
        }
    }

    @Test func importNamesTakeNoDigest() throws {
        #expect(try ImageStore.tagKey(Reference.parse("cirros")) == "cirros:latest")
        #expect(try ImageStore.tagKey(Reference.parse("h.io/a:1")) == "h.io/a:1")
        #expect(throws: ImageStoreError.self) { try ImageStore.tagKey(Reference.parse("cirros@sha256:" + Self.hex)) }
    }

    @Test func selectorsTakeBareDigests() throws {
        guard case .digest(let d) = try ImageStore.Selector("sha256:" + Self.hex) else { Issue.record("not a digest"); return }
        #expect(d.hex == Self.hex)
        guard case .reference = try ImageStore.Selector("cirros:1") else { Issue.record("not a reference"); return }
    }
}
