import ResourceKit
import Testing
import YAMLTree

@Suite struct ResourceKindColumnTests {
    func node(_ yaml: String) throws -> YAMLNode {
        try #require(try YAMLParser.parse(Array(yaml.utf8), file: "t.yaml").first).root
    }

    let now = Timestamp.parse("2026-11-30T12:00:00Z")!

    @Test func targetColumnsAndSummary() throws {
        let qvt = try KindRegistry.builtIn.resolve("qvt")
        let n = try node("kind: QemuVirtualTarget\nmetadata: {name: a, creationTimestamp: \"2026-11-30T11:55:00Z\"}\nspec: {qemuConfig: {machine: lm3s6965evb}}\n")
        #expect(qvt.headers(wide: false) == ["MACHINE", "AGE"])
        #expect(qvt.cells(n, now: now, wide: false) == ["lm3s6965evb", "5m0s"])
        #expect(qvt.summary(root: n) == ["machine": "lm3s6965evb"])
        #expect(KindRegistry.builtIn.summary(of: "QemuVirtualTarget", root: n) == ["machine": "lm3s6965evb"])
        #expect(KindRegistry.builtIn.summary(of: "Widget", root: n) == [:])
    }

    @Test func configMapCountsDataAndBinaryData() throws {
        let cm = try KindRegistry.builtIn.resolve("cm")
        let n = try node("kind: ConfigMap\nmetadata: {name: a}\ndata: {a: x, b: y}\nbinaryData: {c: AA==}\n")
        #expect(cm.summary(root: n) == ["data": "3"])
        #expect(cm.cells(n, now: now, wide: false) == ["3", "<unknown>"])
    }

    @Test func instanceColumnsReadTheStatusAndWideAddsMore() throws {
        let vti = try KindRegistry.builtIn.resolve("vti")
        let n = try node("""
            kind: VirtualTargetInstance
            metadata: {name: a, creationTimestamp: "2026-11-30T10:00:00Z"}
            spec: {targetRef: {name: t}}
            status:
              phase: Running
              conditions: [{type: Ready, status: "True"}]
              restarts: 2
              startedAt: "2026-11-30T11:59:15.5Z"
              machine: lm3s6965evb
              pid: 42
              expiresAt: "2026-11-30T12:10:00Z"
            """)
        #expect(vti.headers(wide: false) == ["READY", "STATUS", "RESTARTS", "AGE"])
        // issue 14 item 8: AGE is the object's (from its creation), not the last start's.
        #expect(vti.cells(n, now: now, wide: false) == ["1/1", "Running", "2", "120m"])
        #expect(vti.headers(wide: true) == ["READY", "STATUS", "RESTARTS", "AGE", "MACHINE", "TARGET", "PID", "QEMU PID", "EXPIRES", "REASON", "CLAIMED"])
        #expect(vti.cells(n, now: now, wide: true).suffix(7) == ["lm3s6965evb", "t", "42", "-", "10m", "-", "-"])
        // What the stored resource alone says: the target, not the live status.
        #expect(vti.summary(root: n) == ["target": "t"])
        let waiting = try node("metadata: {name: a}\nstatus: {phase: Failed, nextRestartAt: \"2026-11-30T12:00:01Z\", conditions: [{type: Ready, status: \"False\"}]}\n")
        #expect(vti.cells(waiting, now: now, wide: false) == ["0/1", "BackOff", "0", "<unknown>"])
        // issue 14 item 8: stopped on request shows Stopped; a claim shows in wide.
        let stopped = try node("metadata: {name: a}\nstatus: {phase: Succeeded, reason: Stopped}\n")
        #expect(vti.cells(stopped, now: now, wide: false)[1] == "Stopped")
        let ended = try node("metadata: {name: a}\nstatus: {phase: Succeeded, reason: UntilMatched}\n")
        #expect(vti.cells(ended, now: now, wide: false)[1] == "Succeeded")
        let claimed = try node("metadata: {name: a}\nstatus: {phase: Running, claimedAt: \"2026-11-30T11:56:50Z\"}\n")
        #expect(vti.cells(claimed, now: now, wide: true).last == "3m10s ago")
    }

    @Test func poolColumns() throws {
        let vtp = try KindRegistry.builtIn.resolve("pools")
        let n = try node("metadata: {name: ci}\nspec: {targetRef: {name: warm}, minReady: 2, maxInstances: 4, recycle: snapshot}\nstatus: {members: 3, ready: 2, claimed: 1}\n")
        #expect(vtp.cells(n, now: now, wide: false) == ["warm", "2", "1", "3", "2", "4", "snapshot"])
        #expect(vtp.summary(root: n) == ["target": "warm", "min": "2", "max": "4", "recycle": "snapshot"])
    }

    @Test func timestampsAndDurations() {
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2000-03-01T00:00:00Z") == 951_868_800)
        #expect(Timestamp.parse("2024-02-29T23:59:59.25Z") == 1_709_251_199.25)
        for bad in ["", "2024-02-29", "2024-02-29T23:59:59", "2024-13-01T00:00:00Z", "2024-02-29T23:59:59+01:00", "2024-02-29T23:59:59.Z"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
        let seconds: [Double] = [-5, 0, 45, 119, 192, 600, 10_799, 18_000, 259_200]
        #expect(seconds.map(Timestamp.duration) == ["0s", "0s", "45s", "119s", "3m12s", "10m", "179m", "5h", "3d"])
    }
}
