import Foundation
import Testing
import TestSupport
@testable import YAMLTree

@Suite struct YAMLEmitterTests {
    /// The shape of a tree, with scalar values and the null/non-null reading, ignoring styles and marks.
    func shape(_ n: YAMLNode) -> String {
        switch n.content {
        case .scalar(let s, _): return (n.isNull ? "~" : "s:" + s) + (n.tag.map { "<\($0)>" } ?? "")
        case .sequence(let items): return "[" + items.map(shape).joined(separator: ",") + "]"
        case .mapping(let pairs): return "{" + pairs.map { shape($0.key) + "=" + shape($0.value) }.joined(separator: ",") + "}"
        }
    }

    func roundTrip(_ text: String) throws {
        let docs = try YAMLParser.parse(text, file: "in.yaml").map(\.root)
        let emitted = YAMLEmitter.emit(docs)
        let again = try YAMLParser.parse(emitted, file: "out.yaml").map(\.root)
        #expect(docs.map(shape) == again.map(shape), "emitted:\n\(emitted)")
        // Canonical: emitting the re-read tree gives the same text.
        #expect(YAMLEmitter.emit(again) == emitted)
    }

    @Test(arguments: [
        "a: 1\nb: true\nc: ~\nd:\ne: 'true'\nf: \"123\"\ng: '0x1F'\nh: 'yes'\n",
        "s: 'a: b'\nt: 'x #y'\nu: \"line1\\nline2\\ttab\"\nv: '- x'\nw: '-5'\nx: '  pad  '\ny: '#hash'\nz: \"\\u0001\"\n",
        "list: [1, 'two', {k: v}, [a, b], [], {}]\nnested:\n  - - x\n    - y\n  - {p: q, r: [s]}\n",
        "bin: !!binary aGVsbG8=\nstr: !!str 5\nn: !!null ''\nm: !!map {a: ~}\ns: !!seq [x]\nplain: ! 7\n",
        "? [a, b]\n: complex key\n",
        "ünïcode: \"日本\"\nemoji: '🙂'\nq: \"say \\\"hi\\\"\"\nback: 'a\\b'\n",
        "folded: >\n  one\n  two\nliteral: |\n  keep\n  lines\n",
        "a: 1\n---\nb: [2]\n",
        "dash: '-'\nminus: -x\ncolonEnd: 'x:'\nurl: http://h:1/p\ntime: '12:30'\nfloat: '1e3'\nver: '1.2.3'\n",
    ])
    func roundTrips(_ text: String) throws {
        try roundTrip(text)
    }

    @Test func everyExampleRoundTrips() throws {
        let dir = repoRoot + "/examples"
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        #expect(files.count > 10)
        for file in files {
            try roundTrip(try String(contentsOfFile: dir + "/" + file, encoding: .utf8))
        }
    }

    @Test func sameContentSameText() throws {
        let a = try YAMLParser.parse("# comment\nmetadata: {name: x, labels: {}}\nspec:\n  ttl: \"15m\"\n", file: "a").map(\.root)
        let b = try YAMLParser.parse("metadata:\n  name: 'x'\n  labels: {}\nspec: {ttl: 15m}   # other\n", file: "b").map(\.root)
        #expect(YAMLEmitter.emit(a) == YAMLEmitter.emit(b))
        #expect(YAMLEmitter.emit(a) == "metadata:\n  name: x\n  labels: {}\nspec:\n  ttl: 15m\n")
    }
}

/// Positions in the canonical YAML the supervisor stores map back to the
/// user's own file.
@Suite struct YAMLLocateTests {
    @Test func aPositionInTheCanonicalTextFindsTheUsersNode() throws {
        let original = """
            # a comment the canonical form drops
            apiVersion: qemu.kubetarget.dev/v1alpha1
            kind: QemuVirtualTarget
            metadata: {name: a}
            spec:
              qemuConfig:
                drives:
                  - {name: fw, type: pflash, source: {configMap: {name: missing}}}
            """
        let user = try #require(try YAMLParser.parse(Array(original.utf8), file: "user.yaml").first?.root)
        let canonicalText = YAMLEmitter.emit(user)
        let canonical = try #require(try YAMLParser.parse(Array(canonicalText.utf8), file: "stored").first?.root)
        let stored = try #require(canonical.following([.value(3), .value(0), .value(0), .item(0), .value(2), .value(0), .value(0)]))
        #expect(stored.scalar == "missing")
        let steps = try #require(canonical.steps(to: stored.location.line, column: stored.location.column))
        let mine = try #require(user.following(steps))
        #expect(mine.scalar == "missing")
        #expect(mine.location.file == "user.yaml" && mine.location.line == 8 && mine.location.column == 61, "\(mine.location)")
        // A key maps to the key; a position nothing starts at maps to nothing.
        let keySteps = try #require(canonical.steps(to: canonical.following([.key(3)])!.location.line, column: 1))
        #expect(user.following(keySteps)?.scalar == "spec")
        #expect(canonical.steps(to: 999, column: 1) == nil)
        #expect(user.following([.item(0)]) == nil)
    }
}
