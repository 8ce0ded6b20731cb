import Foundation
import Testing
@testable import ReplayFormat

/// The `boards` list of a bundle of several boards (format 2), and that a
/// one-board manifest is what it always was.
@Suite struct MultiBoardManifestTests {
    static let digest = BundleManifestTests.digest

    static func file(_ path: String, _ role: BundleFile.Role, device: String? = nil, board: String? = nil) -> BundleFile {
        BundleFile(path: path, role: role, device: device, size: 1, sha256: digest, board: board)
    }

    static func pair(boards: [BundleManifest.Board]? = nil, extra: [BundleFile] = []) -> BundleManifest {
        var m = BundleManifestTests.manifest(files: [
            file("spec.yaml", .spec),
            file("boards/node-a/replay.bin", .replayLog, board: "node-a"),
            file("boards/node-a/serial/console.out", .serialOutput, device: "console", board: "node-a"),
            file("boards/node-b/replay.bin", .replayLog, board: "node-b"),
            file("boards/node-b/serial/console.out", .serialOutput, device: "console", board: "node-b"),
        ] + extra, version: 2)
        m.boards = boards ?? [.init(name: "node-a", machine: "stm32vldiscovery"), .init(name: "node-b", machine: "netduinoplus2")]
        return m
    }

    static func code(_ m: BundleManifest) -> BundleError.Code? {
        do { _ = try BundleManifest.decode(m.encoded()); return nil } catch { return error.code }
    }

    /// A one-board manifest as written before `boards` (format 1, no
    /// `board` or `boards` keys) still decodes, and encodes without them.
    @Test func aOneBoardManifestIsUnchanged() throws {
        let old = #"""
            {"createdAt":"2026-11-30T12:00:00Z","files":[{"path":"spec.yaml","role":"spec","sha256":"\#(Self.digest)","size":10},
             {"path":"replay.bin","role":"replayLog","sha256":"\#(Self.digest)","size":100},
             {"device":"uart0","path":"serial/uart0.out","role":"serialOutput","sha256":"\#(Self.digest)","size":5}],
             "formatVersion":1,"host":{"architecture":"x86_64","kernel":"6.1.0"},
             "instance":{"icountShift":"auto","machine":"lm3s6965evb","name":"board","namespace":"default"},
             "omittedImages":[],"qemu":{"binary":"qemu-system-arm","sha256":"\#(Self.digest)","version":"QEMU emulator version 7.2.15"},
             "vtargetVersion":"0.1.0","verdict":{"exitCode":1,"reason":"test echo failed"}}
            """#
        let m = try BundleManifest.decode(Array(old.utf8))
        #expect(m.boards == nil && m.boardNames == ["board"])
        #expect(m.file(.replayLog, board: "board")?.path == "replay.bin")
        #expect(m.file(.replayLog, board: "other") == nil)
        #expect(m.files(board: "board").filter { $0.role == .serialOutput }.map(\.device) == ["uart0"])
        let text = String(decoding: m.encoded(), as: UTF8.self)
        #expect(!text.contains("\"board\" :") && !text.contains("\"boards\" :"), "\(text)")
    }

    @Test func severalBoardsRoundTrip() throws {
        let m = Self.pair(extra: [Self.file("junit.xml", .junit)])
        let back = try BundleManifest.decode(m.encoded())
        #expect(back == m)
        #expect(back.boardNames == ["node-a", "node-b"])
        #expect(back.file(.replayLog, board: "node-b")?.path == "boards/node-b/replay.bin")
        #expect(back.file(.replayLog) == nil, "two logs: none is the bundle's only one")
        #expect(back.files(board: "node-a").map(\.path) == ["boards/node-a/replay.bin", "boards/node-a/serial/console.out"])
        #expect(back.file(.spec)?.path == "spec.yaml")
    }

    /// What a board name may be: a target's name, one safe path part.
    @Test(arguments: ["", "Node-A", "-a", "a-", "a/b", "..", "a.b", "a b", String(repeating: "a", count: 64), "ä"])
    func aBadBoardNameIsRefused(_ name: String) {
        let m = Self.pair(boards: [.init(name: name, machine: "m"), .init(name: "node-b", machine: "m")])
        #expect(Self.code(m) == .invalidField, "accepted \(name)")
    }

    @Test(arguments: ["a", "node-a", "0", String(repeating: "a", count: 63)])
    func aGoodBoardNameReads(_ name: String) throws {
        var m = Self.pair(boards: [.init(name: name, machine: "m"), .init(name: "node-b", machine: "m")])
        m.files = m.files.map { f in var f = f; if f.board == "node-a" { f.board = name; f.path = f.path.replacingOccurrences(of: "node-a", with: name) }; return f }
        #expect(try BundleManifest.decode(m.encoded()).boardNames == [name, "node-b"])
    }

    @Test func badBoardListsSayWhatIsWrong() {
        // Under format 1 a boards list is refused: a format-1 reader would not know it.
        var v1 = Self.pair()
        v1.formatVersion = 1
        #expect(Self.code(v1) == .invalidField)
        // One board is the instance alone, not a list.
        var single = Self.pair(boards: [.init(name: "node-a", machine: "m")])
        single.files = single.files.filter { $0.board != "node-b" }
        #expect(Self.code(single) == .invalidField)
        // A board twice.
        #expect(Self.code(Self.pair(boards: [.init(name: "node-a", machine: "m"), .init(name: "node-a", machine: "m")])) == .duplicatePath)
        // A file of a board not listed.
        #expect(Self.code(Self.pair(extra: [Self.file("boards/node-c/replay.bin", .replayLog, board: "node-c")])) == .invalidField)
        // A board with no replay log, or two.
        var noLog = Self.pair()
        noLog.files.removeAll { $0.path == "boards/node-b/replay.bin" }
        #expect(Self.code(noLog) == .missingFile)
        #expect(Self.code(Self.pair(extra: [Self.file("boards/node-b/again.bin", .replayLog, board: "node-b")])) == .missingFile)
        // A board's file that names no board.
        #expect(Self.code(Self.pair(extra: [Self.file("serial/x.out", .serialOutput, device: "x")])) == .invalidField)
        // A one-board manifest with a file naming a board.
        var stray = BundleManifestTests.manifest()
        stray.files[1].board = "board"
        #expect(Self.code(stray) == .invalidField)
    }

    /// What a vtarget reading only format 1 does with a bundle of several
    /// boards: its version check comes first, so it says "use a newer vtarget".
    @Test func aFormatOneReaderRefusesSeveralBoardsByVersion() {
        struct VersionOnly: Decodable { var formatVersion: Int }
        let version = try? JSONDecoder().decode(VersionOnly.self, from: Data(Self.pair().encoded()))
        #expect(version?.formatVersion == 2 && version!.formatVersion > 1)
    }

    @Test func theErrorNamesTheBadBoard() {
        let m = Self.pair(boards: [.init(name: "Node-A", machine: "m"), .init(name: "node-b", machine: "m")])
        do { _ = try BundleManifest.decode(m.encoded()); Issue.record("accepted") } catch {
            #expect(error.message.contains("board name \"Node-A\" is not a target name (1 to 63 of a-z, 0-9 and '-'"), "\(error.message)")
        }
    }
}
