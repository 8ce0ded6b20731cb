import Foundation
import Testing

/// `get` as kubectl does it: every spelling of a kind, label selectors, and -w.
@Suite(.serialized) struct GetCommandTests {
    @Test func kindsResolveAsKubectlAndSelectorsFilter() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        var r = try f.vt(["apply", "-f", f.firmwareMap, "-f", f.targets(["a"], labels: ["app": "x", "tier": "web"]),
                          "-f", f.targets(["b"], labels: ["app": "y"])])
        #expect(r.code == 0, "\(r.stderr)")
        try f.waitFor("both Ready", f.allReady(2))

        for spelling in ["vti", "instance", "VirtualTargetInstances", "virtualtargetinstances.kubetarget.dev"] {
            r = try f.vt(["get", spelling])
            #expect(r.code == 0 && r.stdout.hasPrefix("NAME   READY   STATUS    RESTARTS   AGE"), "\(spelling): \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("\na      1/1     Running   0") && r.stdout.contains("\nb      1/1     Running   0"), "\(spelling): \(r.stdout)")
        }
        r = try f.vt(["get", "instance", "a", "-o", "name"])
        #expect(r.stdout == "virtualtargetinstance.kubetarget.dev/a\n", "\(r.stdout)")
        r = try f.vt(["get", "qemuvirtualtargets.qemu.kubetarget.dev"])
        #expect(r.stdout.hasPrefix("NAME   MACHINE       AGE\na      lm3s6965evb   "), "\(r.stdout)")
        r = try f.vt(["get", "machineprofiles", "-o", "name"])
        #expect(r.code == 0 && r.stdout.contains("lm3s6965evb\n"), "\(r.stdout)")

        r = try f.vt(["get", "targets", "-l", "app=x", "-o", "name"])
        #expect(r.stdout == "qemuvirtualtarget.qemu.kubetarget.dev/a\n", "\(r.stdout)")
        r = try f.vt(["get", "qvt", "--selector", "app notin (x),!tier", "-o", "name"])
        #expect(r.stdout == "qemuvirtualtarget.qemu.kubetarget.dev/b\n", "\(r.stdout)")
        r = try f.vt(["get", "targets", "-l", "app in (x,y),tier", "-o", "json"])
        let items = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]]
        #expect(items?.map(f.name) == ["a"], "\(r.stdout)")
        r = try f.vt(["get", "targets", "-l", "app=nobody"])
        #expect(r.code == 0 && r.stdout.contains("No resources found in default namespace."), "\(r.stdout)")

        r = try f.vt(["get", "targets", "-l", "app in (x"])
        #expect(r.code == 2 && r.stderr.contains("unable to parse selector \"app in (x\""), "\(r.code) \(r.stderr)")
        r = try f.vt(["get", "tragets"])
        #expect(r.code == 2 && r.stderr.contains("did you mean \"targets\"?") && r.stderr.contains("instances (vti, inst)"), "\(r.stderr)")
        r = try f.vt(["delete", "widgets", "a"])
        #expect(r.code == 2 && r.stderr.contains("unknown kind \"widgets\""), "\(r.stderr)")
    }

    /// `get instances -w`: the (empty) listing, then a row when an instance appears and changes.
    @Test func watchPrintsARowWhenAnInstanceChanges() throws {
        let f = SupervisorFixture()
        defer { f.tearDown() }
        try f.vt(["apply", "-f", f.firmwareMap])
        let watch = try launch(["get", "instances", "-w"], runtime: f.runtime, environment: f.environment)
        let objects = try launch(["get", "vti", "--watch", "-o", "json"], runtime: f.runtime, environment: f.environment)
        // Bounded: a watch that never prints is ended, which ends the reads below.
        DispatchQueue.global().asyncAfter(deadline: .now() + 40) { watch.0.terminate(); objects.0.terminate() }
        var seen = readUntil(watch.1, "No resources found", seconds: 10)
        try f.vt(["apply", "-f", f.targets(["watched"])])
        seen += readUntil(watch.1, "1/1", seconds: 30)
        let json = readUntil(objects.1, "\"phase\": \"Running\"", seconds: 10)
        for w in [watch, objects] {
            w.0.terminate()
            _ = finish(w)
        }
        // Each changed object whole, one after another.
        #expect(json.hasPrefix("{\n  \"apiVersion\": \"kubetarget.dev/v1alpha1\",\n  \"kind\": \"VirtualTargetInstance\""), "\(json)")
        #expect(json.components(separatedBy: "\n}\n").count >= 3, "\(json)")
        let lines = seen.split(separator: "\n").map(String.init)
        #expect(lines.first == "No resources found in default namespace.", "\(seen)")
        #expect(lines.dropFirst().first?.hasPrefix("NAME      READY   STATUS") == true, "\(seen)")
        let rows = lines.filter { $0.hasPrefix("watched ") }
        #expect(rows.count >= 2 && rows.first?.contains("0/1") == true && rows.last?.contains("1/1     Running") == true, "\(seen)")
    }
}
