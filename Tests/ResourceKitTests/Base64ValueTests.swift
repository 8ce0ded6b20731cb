import ResourceKit
import Testing

/// Base64 split by YAML's line breaks and indentation decodes whole; what
/// is not base64 once ASCII whitespace is gone is refused.
@Suite struct Base64ValueTests {
    @Test func whitespaceAnywhereIsDropped() {
        let bytes: [UInt8] = Array(0...255)
        // Every 3-byte group encodes to 4 characters; "AAECAwQF..." for 0...255.
        let plain = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w=="
        #expect(Base64Value.decode(plain) == bytes)
        var folded = ""
        for (i, c) in plain.enumerated() {
            folded.append(c)
            if i % 76 == 75 { folded += "\n  " }
        }
        #expect(Base64Value.decode(folded) == bytes)
        #expect(Base64Value.decode(" \t" + plain + "\r\n\u{0B}\u{0C}") == bytes)
        #expect(Base64Value.decode("") == [])
        #expect(Base64Value.decode("aGk=") == Array("hi".utf8))
    }

    @Test func notBase64IsRefused() {
        // No padding, a character outside the alphabet, Unicode whitespace, not ASCII.
        for bad in ["aGk", "a*Gk=", "aGk=\u{00A0}", "é"] {
            #expect(Base64Value.decode(bad) == nil, "\(bad)")
        }
        // Spaces inside a group are whitespace like any other.
        #expect(Base64Value.decode("aG k =") == Array("hi".utf8))
    }
}
