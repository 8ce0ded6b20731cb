import Foundation
import Testing
@testable import QMP

@Suite struct JSONCodecTests {
    @Test func roundTripsAndAgreesWithFoundation() throws {
        let samples = [
            #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}"#,
            #"{"return": {"status": "running", "singlestep": false, "running": true}, "id": "vt-1"}"#,
            #"{"s": "quote \" slash \\ nl \n tab \t ctl \u0001 é 😀 \ud83d\ude00", "n": [0, -1, 2.5, 1e3, -0.125, 1e-05], "z": null}"#,
            "[]", "{}", "  [ 1 , { \"a\" : [ ] } ]  ",
        ]
        for text in samples {
            let mine = try JSONValue.parse(Array(text.utf8))
            let theirs = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            #expect(mine == theirs, "\(text)")
            #expect(try JSONValue.parse(mine.serialized()) == mine)
            // What we write, Foundation reads back to the same value.
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(mine.serialized())) == mine)
        }
    }

    @Test func refusesBadInput() {
        let bad = ["{", "[1,]", #"{"a" 1}"#, #""\u12""#, "tru", #"{"a":1}x"#, "\"a\u{01}b\"",
                   String(repeating: "[", count: 100) + String(repeating: "]", count: 100)]
        for text in bad {
            #expect(throws: JSONValue.ParseError.self, "\(text)") { try JSONValue.parse(Array(text.utf8)) }
        }
    }
}
