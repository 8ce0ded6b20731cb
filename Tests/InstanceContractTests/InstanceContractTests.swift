import Foundation
import InstanceContract
import XCTest

final class InstanceContractTests: XCTestCase {
    func testShimArgumentsRoundTrip() throws {
        var a = ShimArguments(instance: "team-a/node-1", specFile: "/s/instances/team-a/node-1/spec.yaml",
                              statusFile: "/s/instances/team-a/node-1/status.json", relativeTo: "/home/u/proj")
        a.lenient = true
        a.allowHostPaths = true
        a.sandbox = false
        a.poolSnapshot = true
        a.ttlMilliseconds = 1500
        let argv = a.arguments()
        XCTAssertEqual(Array(argv.prefix(4)), ["run", "-f", a.specFile, "--shim"])
        XCTAssertEqual(argv.count, 5)
        XCTAssertEqual(try ShimArguments.parse(argv[4]), a)
        XCTAssertEqual(a.namespaceAndName.namespace, "team-a")
        XCTAssertEqual(a.namespaceAndName.name, "node-1")
    }

    func testShimArgumentsDefaultsSurviveOmittedKeys() throws {
        let a = ShimArguments(instance: "default/x", specFile: "/a", statusFile: "/b", relativeTo: "/c")
        XCTAssertEqual(try ShimArguments.parse(a.arguments()[4]), a)
        XCTAssertThrowsError(try ShimArguments.parse("{\"instance\": 3}"))
        XCTAssertThrowsError(try ShimArguments.parse("not json"))
    }

    func testStandbyAssignmentFramesRoundTrip() throws {
        let a = StandbyAssignment(arguments: ["run", "-f", "/s/spec.yaml", "--shim", "{\"instance\":\"default/x\"}"],
                                  workingDirectory: "/s/instances/default/x", log: "/s/instances/default/x/shim.log")
        let frame = a.framed()
        let length = try XCTUnwrap(StandbyAssignment.frameLength(Array(frame.prefix(4))))
        XCTAssertEqual(length, frame.count - 4)
        XCTAssertEqual(try StandbyAssignment.parse(Array(frame.dropFirst(4))), a)
    }

    func testStandbyFrameHeadersOutOfBoundsAreNoFrames() {
        XCTAssertNil(StandbyAssignment.frameLength([0, 0, 0, 0]), "an empty frame")
        XCTAssertNil(StandbyAssignment.frameLength([0, 0x10, 0, 1]), "past maxFrame")
        XCTAssertNil(StandbyAssignment.frameLength([0xff, 0xff, 0xff, 0xff]))
        XCTAssertNil(StandbyAssignment.frameLength([0, 1]), "a short header")
        XCTAssertEqual(StandbyAssignment.frameLength([0, 0x10, 0, 0]), StandbyAssignment.maxFrame)
        XCTAssertEqual(StandbyAssignment.frameLength([0, 0, 1, 2]), 258)
        XCTAssertThrowsError(try StandbyAssignment.parse(Array("{\"arguments\": 3}".utf8)))
    }

    /// A shim's argv fits the title of a standby started on the same
    /// executable, with room to spare; one longer than the padding does not.
    func testStandbyTitleFitsAShimsArguments() {
        var shim = ShimArguments(instance: "team-a/node-1", specFile: "/var/lib/vtarget/instances/team-a/node-1/spec.yaml",
                                 statusFile: "/var/lib/vtarget/instances/team-a/node-1/status.json", relativeTo: "/home/u/proj")
        shim.bundleDirectory = "/var/lib/vtarget/bundles/team-a/node-1"
        shim.sidecarOwner = ProcessOwner(uid: 1000, gid: 1000, groups: Array(0..<64))
        let exe = "/usr/local/bin/vtarget"
        XCTAssertTrue(StandbyAssignment.fits(shim.arguments(), executable: exe))
        XCTAssertTrue(StandbyAssignment.fits(StandbyAssignment.standbyArguments(), executable: exe), "exactly its own size")
        XCTAssertFalse(StandbyAssignment.fits(StandbyAssignment.standbyArguments() + ["x"], executable: exe))
        shim.relativeTo = String(repeating: "d/", count: 5000)
        XCTAssertFalse(StandbyAssignment.fits(shim.arguments(), executable: exe))
    }

    func testLayoutNamesEveryPathOnce() {
        let l = InstanceLayout.supervised(runtime: "/run/user/1000/vtarget", namespace: "ci", name: "board")
        XCTAssertEqual(l.directory, "/run/user/1000/vtarget/ns-ci/board")
        XCTAssertEqual(l.qmpSocket, l.directory + "/qmp.sock")
        XCTAssertEqual(l.qemuDirectory, l.directory + "/qemu")
        XCTAssertEqual(l.recordFile, l.directory + "/instance.json")
        XCTAssertEqual(l.serialSocket("uart0"), l.directory + "/uart0.sock")
        XCTAssertEqual(l.forceSocket("uart0"), l.directory + "/uart0.force.sock")
        XCTAssertEqual(l.sidecarLog("agent"), l.directory + "/logs/sidecar-agent.log")
        XCTAssertEqual(l.sockets(devices: ["uart0"]), [l.qmpSocket, l.serialSocket("uart0"), l.forceSocket("uart0")])
        let run = InstanceLayout.runDirectory(runtime: "/tmp/vtarget-0", pid: 42)
        XCTAssertEqual(run, "/tmp/vtarget-0/run-42")
        XCTAssertEqual(InstanceLayout.run(run, namespace: "default", name: "a").directory, run + "/a")
        XCTAssertEqual(InstanceLayout.run(run, namespace: "lab", name: "a").directory, run + "/lab.a")
        let st = InstanceStateLayout(stateDirectory: "/s", namespace: "ci", name: "board")
        XCTAssertEqual([st.specFile, st.statusFile, st.shimLog],
                       ["/s/instances/ci/board/spec.yaml", "/s/instances/ci/board/status.json", "/s/instances/ci/board/shim.log"])
        XCTAssertTrue(st.statusFile.hasSuffix("/" + InstanceStateLayout.statusFileName))
    }

    func testStatusKeepsItsWireSpelling() throws {
        var s = ShimStatus.failed(.readinessTimeout, "no /READY/ on uart0 within 2s")
        s.finishedAt = 10
        let json = String(decoding: try s.encoded(), as: UTF8.self)
        XCTAssertTrue(json.contains("\"phase\":\"Failed\""), json)
        XCTAssertTrue(json.contains("\"reason\":\"ReadinessTimeout\""), json)
        XCTAssertEqual(ShimStatus.decode(try s.encoded()), s)
        // A reason a newer vtarget wrote is kept, not refused.
        let future = ShimStatus.decode(Data(#"{"phase":"Succeeded","reason":"SomethingNew","ready":false}"#.utf8))
        XCTAssertEqual(future?.reason?.rawValue, "SomethingNew")
        // Half a file (a crash mid-write never happens with rename, but a stray file may) is no status.
        XCTAssertNil(ShimStatus.decode(Data(#"{"phase":"Runn"#.utf8)))
        XCTAssertNil(ShimStatus.decode(Data(#"{"phase":"Sleeping","ready":false}"#.utf8)))
    }

    func testPhases() {
        XCTAssertEqual(InstancePhase.allCases.filter(\.isActive), [.pending, .starting, .running, .terminating])
        XCTAssertEqual(InstancePhase.allCases.filter(\.isFinished), [.succeeded, .failed, .expired])
    }

    func testRecordRoundTrip() throws {
        let r = InstanceRecord(name: "a", namespace: "default", ownerPID: 1, qemuPID: 2, qemuStartTime: 3, phase: .running, ready: true,
                               serialDevices: ["uart0"], directory: "/d", rfc2217: ["uart0": 4000], powerdown: false, supervised: nil)
        XCTAssertEqual(InstanceRecord.decode(try r.encoded()), r)
        XCTAssertEqual(r.layout.qmpSocket, "/d/qmp.sock")
    }
}
