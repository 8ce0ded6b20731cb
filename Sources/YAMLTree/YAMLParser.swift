import CYAML

/// Bounds that keep hostile input cheap: each is checked while parsing, so an
/// alias bomb or a deeply nested file fails in milliseconds.
public struct YAMLLimits: Sendable {
    public var maxBytes: Int
    public var maxDepth: Int
    /// Nodes counted with every alias expanded, the measure of an alias bomb.
    public var maxNodes: Int

    public init(maxBytes: Int = 16 << 20, maxDepth: Int = 64, maxNodes: Int = 200_000) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
    }
}

public struct YAMLParseError: Error, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public var description: String { Diagnostic.escapingControls("\(location): error: \(message)") }
}

/// libyaml's event parser turned into `YAMLNode` trees.
public enum YAMLParser {
    public static func parse(
        _ bytes: [UInt8], file: String, limits: YAMLLimits = YAMLLimits()
    ) throws(YAMLParseError) -> [YAMLDocument] {
        if bytes.count > limits.maxBytes {
            throw YAMLParseError(
                location: SourceLocation(file: file, line: 1, column: 1),
                message: "file is \(bytes.count) bytes, over the limit of \(limits.maxBytes) bytes")
        }
        try InputChecks.check(bytes, file: file)
        var builder = TreeBuilder(file: file, limits: limits)
        return try builder.run(bytes)
    }

    public static func parse(
        _ text: String, file: String, limits: YAMLLimits = YAMLLimits()
    ) throws(YAMLParseError) -> [YAMLDocument] {
        try parse(Array(text.utf8), file: file, limits: limits)
    }
}

/// Checks libyaml does badly or not at all, done on the raw bytes so they
/// can name the exact line and column.
enum InputChecks {
    static func check(_ bytes: [UInt8], file: String) throws(YAMLParseError) {
        var line = 1
        var column = 1
        var atLineStart = true
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            let width = utf8Width(bytes, i)
            if width == 0 {
                throw YAMLParseError(
                    location: SourceLocation(file: file, line: line, column: column),
                    message: "invalid UTF-8 (byte 0x\(String(b, radix: 16, uppercase: true)) at offset \(i)); YAML files must be UTF-8")
            }
            if b == 0x0A {
                line += 1
                column = 1
                atLineStart = true
                i += 1
                continue
            }
            if atLineStart {
                if b == 0x09 {
                    throw YAMLParseError(
                        location: SourceLocation(file: file, line: line, column: column),
                        message: "tab character in indentation; YAML indents with spaces only")
                }
                if b != 0x20 { atLineStart = false }
            }
            column += 1
            i += width
        }
    }

    /// Length of the well-formed UTF-8 sequence at `i`, or 0.
    static func utf8Width(_ s: [UInt8], _ i: Int) -> Int {
        let b0 = s[i]
        if b0 < 0x80 { return 1 }
        func cont(_ k: Int) -> Bool { i + k < s.count && s[i + k] & 0xC0 == 0x80 }
        switch b0 {
        case 0xC2...0xDF: return cont(1) ? 2 : 0
        case 0xE0:
            return cont(1) && s[i + 1] >= 0xA0 && cont(2) ? 3 : 0
        case 0xED:
            return cont(1) && s[i + 1] < 0xA0 && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : 0
        case 0xF0:
            return cont(1) && s[i + 1] >= 0x90 && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4:
            return cont(1) && s[i + 1] < 0x90 && cont(2) && cont(3) ? 4 : 0
        default: return 0
        }
    }
}

/// Tags: YAML's standard ones where they fit the node, nothing else. A
/// resource has no use for an application tag (`!custom {...}`), and
/// dropping one silently would run something other than what was written.
enum Tags {
    enum Kind: String { case scalar, sequence = "list", mapping }

    static let core = YAMLNode.coreTag("")
    /// Standard tags by the kind of node they may be on.
    static let allowed: [Kind: [String]] = [
        .scalar: ["str", "int", "float", "bool", "null", "binary", "timestamp"],
        .sequence: ["seq"],
        .mapping: ["map"],
    ]
    static let valid = "valid: !!str, !!int, !!float, !!bool, !!null, !!binary, !!timestamp on scalars, !!seq on lists, !!map on mappings"

    static func check(_ node: YAMLNode, at location: SourceLocation) throws(YAMLParseError) {
        try check(node.tag, on: .scalar, value: node.scalar, at: location)
    }

    static func check(_ tag: String?, on kind: Kind, value: String?, at location: SourceLocation) throws(YAMLParseError) {
        // "!" is the non-specific tag: a plain string, list or mapping as written.
        guard let tag, tag != "!" else { return }
        let shown = YAMLEmitter.tagText(tag)
        guard tag.hasPrefix(core), case let name = String(tag.dropFirst(core.count)),
              allowed.values.contains(where: { $0.contains(name) }) else {
            throw YAMLParseError(location: location, message: "unknown tag \(shown); vtarget reads only YAML's standard tags (\(valid))")
        }
        guard allowed[kind]!.contains(name) else {
            throw YAMLParseError(location: location, message: "tag \(shown) does not fit a \(kind.rawValue); \(valid)")
        }
        if let value, !fits(value, name) {
            throw YAMLParseError(location: location, message: "\"\(value)\" is not a valid \(shown) value")
        }
    }

    /// Whether a scalar's text is what its tag says (YAML 1.2's core schema).
    static func fits(_ s: String, _ name: String) -> Bool {
        switch name {
        case "int": return s.wholeMatch(of: /[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+/) != nil
        case "float":
            return s.wholeMatch(of: /[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)/) != nil
        case "bool": return ["true", "True", "TRUE", "false", "False", "FALSE"].contains(s)
        case "null": return ["", "~", "null", "Null", "NULL"].contains(s)
        case "binary": return s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || "+/= \n\r\t".unicodeScalars.contains($0) }
        case "timestamp": return s.wholeMatch(of: /[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?/) != nil
        default: return true
        }
    }
}

/// Builds trees from the event stream, counting expanded nodes and depth.
struct TreeBuilder {
    let file: String
    let limits: YAMLLimits

    /// A collection being built. It is mutated in place on the stack (never
    /// popped and pushed back), and a mapping's keys are also in a dictionary:
    /// either way a collection of n entries took n² steps to build.
    private struct Frame {
        var isMapping: Bool
        var location: SourceLocation
        var tag: String?
        var anchor: String?
        var items: [YAMLNode] = []
        var pairs: [YAMLPair] = []
        var pendingKey: YAMLNode?
        /// Scalar keys seen so far, with where each was first written.
        var keys: [String: SourceLocation] = [:]
    }

    private var stack: [Frame] = []
    private var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    private var nodeCount = 0
    /// Size of each open collection's subtree, so an anchor knows what an alias costs.
    private var sizeStack: [Int] = []

    init(file: String, limits: YAMLLimits) {
        self.file = file
        self.limits = limits
    }

    private func location(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    private func fail(_ mark: yaml_mark_t, _ message: String) -> YAMLParseError {
        YAMLParseError(location: location(mark), message: message)
    }

    mutating func run(_ bytes: [UInt8]) throws(YAMLParseError) -> [YAMLDocument] {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLParseError(location: SourceLocation(file: file, line: 1, column: 1),
                                 message: "libyaml could not initialise")
        }
        defer { yaml_parser_delete(&parser) }
        var documents: [YAMLDocument] = []
        var docStart = SourceLocation(file: file, line: 1, column: 1)
        var root: YAMLNode?
        let result: Result<[YAMLDocument], YAMLParseError> = bytes.withUnsafeBufferPointer { buf in
            yaml_parser_set_input_string(&parser, buf.baseAddress, buf.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    return .failure(parserError(&parser))
                }
                defer { yaml_event_delete(&event) }
                let start = event.start_mark
                do throws(YAMLParseError) {
                    switch event.type {
                    case YAML_STREAM_END_EVENT:
                        return .success(documents)
                    case YAML_DOCUMENT_START_EVENT:
                        docStart = location(start)
                        root = nil
                        anchors = [:]
                    case YAML_DOCUMENT_END_EVENT:
                        // An empty document (a trailing `---`) is skipped, as kubectl does.
                        if let root, !root.isNull { documents.append(YAMLDocument(root: root, location: docStart)) }
                    case YAML_SCALAR_EVENT:
                        let s = event.data.scalar
                        let value = string(s.value, Int(s.length))
                        let style: YAMLNode.ScalarStyle
                        switch s.style {
                        case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                        case YAML_LITERAL_SCALAR_STYLE: style = .literal
                        case YAML_FOLDED_SCALAR_STYLE: style = .folded
                        default: style = .plain
                        }
                        let node = YAMLNode(.scalar(value, style), at: location(start), tag: cString(s.tag))
                        try Tags.check(node, at: node.location)
                        try count(1, at: start)
                        if let anchor = cString(s.anchor) { anchors[anchor] = (node, 1) }
                        try add(node, size: 1, &root)
                    case YAML_ALIAS_EVENT:
                        let name = cString(event.data.alias.anchor) ?? ""
                        guard let target = anchors[name] else {
                            throw fail(start, "unknown alias *\(name)")
                        }
                        try count(target.size, at: start)
                        var node = target.node
                        node.location = location(start)
                        try add(node, size: target.size, &root)
                    case YAML_SEQUENCE_START_EVENT:
                        try open(start)
                        let e = event.data.sequence_start
                        try Tags.check(cString(e.tag), on: .sequence, value: nil, at: location(start))
                        stack.append(Frame(isMapping: false, location: location(start), tag: cString(e.tag), anchor: cString(e.anchor)))
                    case YAML_MAPPING_START_EVENT:
                        try open(start)
                        let e = event.data.mapping_start
                        try Tags.check(cString(e.tag), on: .mapping, value: nil, at: location(start))
                        stack.append(Frame(isMapping: true, location: location(start), tag: cString(e.tag), anchor: cString(e.anchor)))
                    case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                        let size = sizeStack.removeLast()
                        let frame = stack.removeLast()
                        let node = YAMLNode(frame.isMapping ? .mapping(frame.pairs) : .sequence(frame.items), at: frame.location, tag: frame.tag)
                        if let anchor = frame.anchor { anchors[anchor] = (node, size) }
                        try add(node, size: size, &root)
                    default:
                        break
                    }
                } catch {
                    return .failure(error)
                }
            }
        }
        return try result.get()
    }

    private mutating func open(_ mark: yaml_mark_t) throws(YAMLParseError) {
        if stack.count >= limits.maxDepth {
            throw fail(mark, "nesting deeper than \(limits.maxDepth) levels")
        }
        try count(1, at: mark)
        sizeStack.append(1)
    }

    private mutating func count(_ n: Int, at mark: yaml_mark_t) throws(YAMLParseError) {
        nodeCount += n
        if nodeCount > limits.maxNodes {
            throw fail(mark, "document expands to more than \(limits.maxNodes) nodes (aliases included); refusing an alias bomb")
        }
    }

    /// Adds a finished node to the collection being built, or makes it the root.
    private mutating func add(_ node: YAMLNode, size: Int, _ root: inout YAMLNode?) throws(YAMLParseError) {
        if !sizeStack.isEmpty { sizeStack[sizeStack.count - 1] += size }
        let top = stack.count - 1
        guard top >= 0 else {
            root = node
            return
        }
        if !stack[top].isMapping {
            stack[top].items.append(node)
        } else if let key = stack[top].pendingKey {
            stack[top].pairs.append(YAMLPair(key: key, value: node))
            stack[top].pendingKey = nil
        } else {
            if let k = node.scalar {
                if let first = stack[top].keys[k] {
                    throw YAMLParseError(
                        location: node.location,
                        message: "duplicate key \"\(k)\" (first at line \(first.line), column \(first.column))")
                }
                stack[top].keys[k] = node.location
            }
            stack[top].pendingKey = node
        }
    }

    private func parserError(_ parser: inout yaml_parser_t) -> YAMLParseError {
        var message = cString(parser.problem) ?? "malformed YAML"
        if let context = cString(parser.context) { message += " \(context)" }
        var mark = parser.problem_mark
        if parser.error == YAML_READER_ERROR {
            mark.line = 0
            mark.column = parser.problem_offset
        }
        return fail(mark, message)
    }

    private func cString(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let p else { return nil }
        return String(cString: UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))
    }

    private func cString(_ p: UnsafePointer<CChar>?) -> String? {
        guard let p else { return nil }
        return String(cString: p)
    }

    private func string(_ p: UnsafeMutablePointer<yaml_char_t>?, _ length: Int) -> String {
        guard let p else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: length), as: UTF8.self)
    }
}
