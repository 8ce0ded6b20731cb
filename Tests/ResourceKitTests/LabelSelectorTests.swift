import ResourceKit
import Testing

@Suite struct LabelSelectorTests {
    static let parsed: [(String, [LabelSelector.Requirement])] = [
        ("", []),
        ("   ", []),
        ("app=x", [.equals("app", "x")]),
        ("app==x", [.equals("app", "x")]),
        ("app = x", [.equals("app", "x")]),
        ("app!=x", [.notEquals("app", "x")]),
        ("app=", [.equals("app", "")]),
        ("app!=", [.notEquals("app", "")]),
        ("app", [.exists("app")]),
        ("!app", [.doesNotExist("app")]),
        ("! app", [.doesNotExist("app")]),
        ("env in (a,b)", [.in("env", ["a", "b"])]),
        ("env in ( a , b )", [.in("env", ["a", "b"])]),
        ("env notin (a)", [.notIn("env", ["a"])]),
        ("env in ()", [.in("env", [""])]),
        ("env in (a,)", [.in("env", ["a", ""])]),
        ("app=x,tier!=db,env in (a,b),!legacy,owner", [
            .equals("app", "x"), .notEquals("tier", "db"), .in("env", ["a", "b"]), .doesNotExist("legacy"), .exists("owner"),
        ]),
        ("kubetarget.dev/board=stm32-f4,a.b_c-d=E.f_g-1", [.equals("kubetarget.dev/board", "stm32-f4"), .equals("a.b_c-d", "E.f_g-1")]),
        ("in=notin", [.equals("in", "notin")]),
    ]

    @Test(arguments: parsed)
    func parses(_ text: String, _ expected: [LabelSelector.Requirement]) throws {
        #expect(try LabelSelector(parsing: text).requirements == expected)
    }

    static let refused: [(String, String)] = [
        ("app=x,", "expected a key or '!', found the end"),
        (",app", "expected a key or '!', found ','"),
        ("app=x y", "expected ',' or the end, found \"y\""),
        ("app in a,b", "expected '(' after in/notin"),
        ("app in (a,b", "in a set of values expected ',' or ')', found the end"),
        ("app notin (a b)", "in a set of values expected ',' or ')', found \"b\""),
        ("app=(x)", "expected ',' or the end, found '('"),
        ("app ~ x", "after key \"app\" expected =, ==, !=, in, notin, ',' or the end, found \"~\""),
        ("!", "expected a key after '!'"),
        ("!app=x", "expected ',' or the end, found '='"),
        ("=x", "expected a key or '!', found '='"),
        ("-app=x", "invalid label key \"-app\""),
        ("a/b/c=x", "invalid label key \"a/b/c\""),
        ("Bad_Prefix/app=x", "invalid label key \"Bad_Prefix/app\""),
        ("/app=x", "invalid label key \"/app\""),
        (String(repeating: "k", count: 64) + "=x", "invalid label key"),
        ("app=x-", "invalid label value \"x-\""),
        ("app in (ok,b@d)", "invalid label value \"b@d\""),
        ("app=" + String(repeating: "v", count: 64), "invalid label value"),
    ]

    @Test(arguments: refused)
    func refuses(_ text: String, _ reason: String) {
        do {
            let s = try LabelSelector(parsing: text)
            Issue.record("\(text) parsed as \(s)")
        } catch {
            #expect(error.selector == text)
            #expect(error.reason.hasPrefix(reason), "\(error.reason)")
            #expect(error.description.hasPrefix("unable to parse selector \"\(text)\": "))
        }
    }

    static let labels = ["app": "x", "tier": "web", "empty": ""]

    static let selections: [(String, Bool)] = [
        ("", true),
        ("app=x", true), ("app==x", true), ("app=y", false), ("missing=x", false),
        ("app!=y", true), ("app!=x", false), ("missing!=x", true),
        ("app in (x,y)", true), ("app in (y)", false), ("missing in (x)", false),
        ("app notin (y)", true), ("app notin (x,y)", false), ("missing notin (x)", true),
        ("app", true), ("missing", false), ("!missing", true), ("!app", false),
        ("empty=", true), ("empty", true), ("empty in ()", true), ("app in ()", false),
        ("app=x,tier=web", true), ("app=x,tier=db", false), ("app=x,!tier", false),
    ]

    @Test(arguments: selections)
    func selects(_ text: String, _ expected: Bool) throws {
        #expect(try LabelSelector(parsing: text).matches(Self.labels) == expected)
    }

    @Test(arguments: parsed)
    func descriptionParsesBackToTheSameSelector(_ text: String, _ expected: [LabelSelector.Requirement]) throws {
        let s = try LabelSelector(parsing: text)
        #expect(try LabelSelector(parsing: s.description) == s)
    }
}
