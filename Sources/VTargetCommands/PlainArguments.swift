/// A command line of the plain shape scripts and the supervisor write,
/// read into a value without ArgumentParser: `--name VALUE`,
/// `--name=VALUE`, the short names given (`-f VALUE`, `-R`), each at most
/// once except those marked repeatable, and, when the command takes one, a
/// command after `--`. Anything else (help, an unknown or repeated flag,
/// short flags run together, a value that looks like a flag, a positional
/// word) is nil, and ArgumentParser then parses the line and says what is
/// wrong. ArgumentParser reads a command's flags by reflection, and in a
/// binary holding 11,500 protocol conformances each of its first dynamic
/// casts scans them all: 4–6 ms of CPU per command before it does anything.
/// Each user's tests hold it to ArgumentParser's reading over a corpus.
struct PlainArguments<Value>: Sendable {
    /// The flags that take a value, by long name, and where it goes.
    var options: [String: @Sendable (inout Value, String) -> Void]
    /// The flags without a value.
    var flags: [String: @Sendable (inout Value) -> Void] = [:]
    /// Short spellings: `-f` → `filename`.
    var short: [String: String] = [:]
    /// Long names that may come more than once (`-f`).
    var repeatable: Set<String> = []
    /// Where the words after `--` go; nil: `--` is not taken.
    var afterTerminator: (@Sendable (inout Value, [String]) -> Void)?

    /// Every long name read.
    var longNames: Set<String> { Set(options.keys).union(flags.keys) }

    func parse(_ arguments: some Collection<String>, into start: Value) -> Value? {
        var value = start
        var seen = Set<String>()
        var rest = arguments[...]
        while let word = rest.popFirst() {
            if word == "--" {
                guard let afterTerminator else { return nil }
                afterTerminator(&value, Array(rest))
                break
            }
            let name: String
            var attached: String?
            if let long = short[word] {
                name = long
            } else if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                if let equals = body.firstIndex(of: "=") {
                    name = String(body[..<equals])
                    attached = String(body[body.index(after: equals)...])
                } else {
                    name = String(body)
                }
            } else {
                return nil
            }
            guard seen.insert(name).inserted || repeatable.contains(name) else { return nil }
            if let set = flags[name] {
                guard attached == nil else { return nil }
                set(&value)
            } else if let set = options[name] {
                guard let v = attached ?? rest.popFirst(), v == "-" || !v.hasPrefix("-") else { return nil }
                set(&value, v)
            } else {
                return nil
            }
        }
        return value
    }
}
