#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HostOS

/// What `vtarget run --junit FILE` writes: one testcase per target boot, per
/// readiness, per declarative test and per command, with the serial output
/// attached to failures. The JUnit XML that CI systems and junitparser read.
public struct JUnitReport: Sendable {
    public struct Case: Sendable {
        public var classname: String
        public var name: String
        public var seconds: Double
        public var failure: String?
        public var output: String?

        public init(classname: String, name: String, seconds: Double, failure: String? = nil, output: String? = nil) {
            self.classname = classname
            self.name = name
            self.seconds = seconds
            self.failure = failure
            self.output = output
        }
    }

    public var suite = "vtarget"
    public var cases: [Case] = []

    public init() {}

    public var xml: String {
        let failures = cases.filter { $0.failure != nil }.count
        let total = cases.reduce(0) { $0 + $1.seconds }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites tests=\"\(cases.count)\" failures=\"\(failures)\" time=\"\(Self.seconds(total))\">\n"
        out += "  <testsuite name=\"\(Self.escape(suite))\" tests=\"\(cases.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\" time=\"\(Self.seconds(total))\">\n"
        for c in cases {
            out += "    <testcase classname=\"\(Self.escape(c.classname))\" name=\"\(Self.escape(c.name))\" time=\"\(Self.seconds(c.seconds))\""
            if c.failure == nil && c.output == nil {
                out += "/>\n"
                continue
            }
            out += ">\n"
            if let f = c.failure {
                out += "      <failure message=\"\(Self.escape(f))\">\(Self.escape(f))</failure>\n"
            }
            if let o = c.output, !o.isEmpty {
                out += "      <system-out>\(Self.escape(o))</system-out>\n"
            }
            out += "    </testcase>\n"
        }
        out += "  </testsuite>\n</testsuites>\n"
        return out
    }

    public func write(to path: String) throws(RuntimeError) {
        guard FileManager.default.createFile(atPath: path, contents: Data(xml.utf8)) else {
            throw RuntimeError("cannot write the JUnit report to \(path)")
        }
    }

    static func seconds(_ s: Double) -> String {
        let ms = Int((s * 1000).rounded())
        let frac = String(ms % 1000)
        return "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }

    /// XML text: the five entities, and no characters XML 1.0 forbids
    /// (serial output has control bytes and invalid UTF-8).
    static func escape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(u)
            case _ where u.value < 0x20 || u.value == 0xFFFE || u.value == 0xFFFF: out += "\u{FFFD}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
