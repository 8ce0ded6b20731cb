import Testing
@testable import YAMLTree

@Suite struct YAMLParserTests {
    func parseError(_ text: String, limits: YAMLLimits = YAMLLimits()) -> YAMLParseError? {
        do {
            _ = try YAMLParser.parse(text, file: "t.yaml", limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func marksAreOneBased() throws {
        let docs = try YAMLParser.parse("a: 1\nb:\n  c: [x, y]\n", file: "t.yaml")
        guard case .mapping(let pairs) = docs[0].root.content else { Issue.record("not a mapping"); return }
        #expect(pairs[0].key.location == SourceLocation(file: "t.yaml", line: 1, column: 1))
        #expect(pairs[1].key.location.line == 2)
        guard case .mapping(let inner) = pairs[1].value.content, case .sequence(let items) = inner[0].value.content else {
            Issue.record("bad shape"); return
        }
        #expect(items[1].location == SourceLocation(file: "t.yaml", line: 3, column: 10))
        #expect(items[1].scalar == "y")
    }

    @Test func multipleDocuments() throws {
        let docs = try YAMLParser.parse("a: 1\n---\nb: 2\n---\n", file: "t.yaml")
        #expect(docs.count == 2)
        #expect(docs[1].location.line == 2)
    }

    @Test func duplicateKeyPointsAtTheSecond() {
        let e = parseError("a: 1\nb: 2\na: 3\n")
        #expect(e?.location.line == 3)
        #expect(e?.location.column == 1)
        #expect(e?.message == "duplicate key \"a\" (first at line 1, column 1)")
    }

    /// Tags were dropped silently (`!custom {...}` read as a plain mapping);
    /// only YAML's standard ones, on nodes they fit, are read now.
    @Test(arguments: [
        ("metadata: !custom {name: x}\n", "1:11", "unknown tag !custom; vtarget reads only YAML's standard tags (valid: !!str, !!int"),
        ("a:\n  - !thing v\n", "2:5", "unknown tag !thing;"),
        ("a: !<tag:example.com,2000:app/foo> v\n", "1:4", "unknown tag !<tag:example.com,2000:app/foo>;"),
        ("%TAG !e! tag:example.com,2000:\n---\na: !e!foo v\n", "3:4", "unknown tag !<tag:example.com,2000:foo>;"),
        ("a: !!set {x: ~}\n", "1:4", "unknown tag !!set;"),
        ("a: !!map x\n", "1:4", "tag !!map does not fit a scalar;"),
        ("a: !!str [x]\n", "1:4", "tag !!str does not fit a list;"),
        ("a: !!int abc\n", "1:4", "\"abc\" is not a valid !!int value"),
        ("a: !!bool yes\n", "1:4", "\"yes\" is not a valid !!bool value"),
        ("a: !!binary 'not base64!'\n", "1:4", "\"not base64!\" is not a valid !!binary value"),
    ])
    func unknownOrMisplacedTagsAreRefused(_ text: String, _ at: String, _ message: String) {
        let e = parseError(text)
        #expect(e.map { "\($0.location.line):\($0.location.column)" } == at, "\(String(describing: e))")
        #expect(e?.message.hasPrefix(message) == true, "\(String(describing: e))")
    }

    @Test func standardTagsAreRead() throws {
        let docs = try YAMLParser.parse("a: !!str 5\nb: !!int \"7\"\nc: !!null ''\nd: !!map {e: !!float 1.5}\nf: ! x\ng: !!binary aGVsbG8=\n", file: "t.yaml")
        guard case .mapping(let pairs) = docs[0].root.content else { Issue.record("not a mapping"); return }
        #expect(pairs.map(\.value.tag) == [YAMLNode.coreTag("str"), YAMLNode.coreTag("int"), YAMLNode.coreTag("null"), YAMLNode.coreTag("map"), "!", YAMLNode.coreTag("binary")])
        #expect(pairs[2].value.isNull && !pairs[0].value.isNull)
        let context = DecodeContext()
        #expect(MappingReader.int(pairs[1].value, "b", context) == 7)
        #expect(MappingReader.int(pairs[0].value, "a", context) == nil, "!!str 5 is a string")
        #expect(MappingReader.string(pairs[5].value, "g", context) == nil, "!!binary outside binaryData")
        #expect(MappingReader.string(pairs[5].value, "g", context, binary: true) == "aGVsbG8=")
        #expect(context.diagnostics.map(\.description) == [
            "t.yaml:1:4: error: a: expected a whole number, got \"5\"",
            "t.yaml:6:4: error: g: !!binary is read only in a ConfigMap's binaryData; write the text itself here",
        ])
    }

    /// A NUL or an escape sequence in a key never reaches a terminal raw.
    @Test func controlCharactersInErrorsAreEscaped() {
        let e = parseError("\"k\\0\\e[2J\\u202E\": 1\n\"k\\0\\e[2J\\u202E\": 2\n")
        #expect(e?.description == "t.yaml:2:1: error: duplicate key \"k\\0\\u001B[2J\\u202E\" (first at line 1, column 1)")
        let d = Diagnostic(.error, at: SourceLocation(file: "a\nb.yaml", line: 1, column: 2), field: "data.x\u{7F}", "bad \"\u{0}\t\r\u{85}\u{2028}\"")
        #expect(d.description == "a\\nb.yaml:1:2: error: data.x\\u007F: bad \"\\0\\t\\r\\u0085\\u2028\"")
        #expect(Diagnostic.escapingControls("plain ünïcode 🙂") == "plain ünïcode 🙂")
    }

    @Test func tabIndentation() {
        let e = parseError("a:\n\tb: 1\n")
        #expect(e?.location == SourceLocation(file: "t.yaml", line: 2, column: 1))
        #expect(e?.message.contains("tab character in indentation") == true)
    }

    @Test func invalidUTF8() {
        let e = try? #require(parseErrorBytes(Array("a: 1\nb: x".utf8) + [0xC3, 0x28] + Array("\n".utf8)))
        #expect(e?.location.line == 2)
        #expect(e?.location.column == 5)
        #expect(e?.message.contains("invalid UTF-8") == true)
    }

    func parseErrorBytes(_ bytes: [UInt8]) -> YAMLParseError? {
        do { _ = try YAMLParser.parse(bytes, file: "t.yaml"); return nil } catch { return error }
    }

    @Test func nestingBound() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let e = parseError(deep)
        #expect(e?.message == "nesting deeper than 64 levels")
        #expect(e?.location.column == 65)
    }

    @Test func aliasBombFails() {
        // Each level multiplies the expansion by ten: 10^9 nodes if expanded.
        var text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"]
        var prev = "a"
        for n in names {
            text += "\(n): &\(n) [" + Array(repeating: "*\(prev)", count: 10).joined(separator: ", ") + "]\n"
            prev = n
        }
        let e = parseError(text)
        #expect(e?.message.contains("alias bomb") == true)
        #expect(e?.location.line ?? 0 >= 5)
    }

    @Test func sizeBound() {
        let e = parseError(String(repeating: "a", count: 2000), limits: YAMLLimits(maxBytes: 1000))
        #expect(e?.message == "file is 2000 bytes, over the limit of 1000 bytes")
    }

    @Test func libyamlErrorsHavePositions() {
        let e = parseError("a: [1, 2\nb: 3\n")
        #expect(e != nil)
        #expect(e?.location.line == 2)
    }

    @Test func unknownAlias() {
        let e = parseError("a: *nope\n")
        #expect(e != nil)
    }

    @Test func suggestions() {
        #expect(Suggestion.nearest("stm32vldiscovry", in: ["stm32vldiscovery", "netduino2"]) == "stm32vldiscovery")
        #expect(Suggestion.nearest("netduinoplus", in: ["netduinoplus2", "netduino2"]) == "netduinoplus2")
        #expect(Suggestion.nearest("zzzzzz", in: ["netduino2"]) == nil)
    }
}
