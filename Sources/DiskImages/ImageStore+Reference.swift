extension ImageStore {
    /// `[REGISTRY/]REPOSITORY[:TAG][@sha256:HEX]`, Docker's reference grammar
    /// (the one KubeVirt's `containerDisk.image` uses), checked strictly so a
    /// name can never become a path, a URL or a second argument.
    public struct Reference: Hashable, Sendable, CustomStringConvertible {
        /// `host[:port]`, present when the first component is a host: it
        /// holds a `.` or a `:`, is `localhost`, or is an `[IPv6]` literal.
        public var registry: String?
        /// Lowercase path components joined by `/`.
        public var repository: String
        public var tag: String?
        public var digest: OCIDigest?

        public init(registry: String?, repository: String, tag: String?, digest: OCIDigest?) {
            self.registry = registry
            self.repository = repository
            self.tag = tag
            self.digest = digest
        }

        /// What the store calls the image: registry and repository.
        public var name: String { registry.map { $0 + "/" + repository } ?? repository }
        /// The tag a reference without tag or digest means: `latest`.
        public var effectiveTag: String? { tag ?? (digest == nil ? "latest" : nil) }

        public var description: String {
            name + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.description } ?? "")
        }

        /// What would be valid, repeated in every refusal.
        static let grammar = "expected NAME[:TAG] or NAME@sha256:<64 hex>, NAME as [HOST[:PORT]/]path/of/lowercase-components"

        public static func parse(_ text: String) throws(ImageStoreError) -> Reference {
            func refuse(_ why: String) -> ImageStoreError {
                ImageStoreError(.badReference, "image reference \"\(printable(text))\": \(why); \(grammar)")
            }
            guard !text.isEmpty else { throw refuse("empty") }
            guard text.utf8.count <= 512, text.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                throw refuse("only printable ASCII without spaces, at most 512 bytes")
            }
            var rest = Substring(text)
            var digest: OCIDigest?
            if let at = rest.firstIndex(of: "@") {
                let d = rest[rest.index(after: at)...]
                guard !d.contains("@") else { throw refuse("more than one @") }
                do {
                    digest = try OCIDigest(parsing: String(d))
                } catch {
                    throw refuse(error.message)
                }
                rest = rest[..<at]
            }
            var tag: String?
            if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/"), !rest[colon...].contains("]") {
                let t = rest[rest.index(after: colon)...]
                guard isTag(t) else { throw refuse("tag \"\(t)\" must be 1 to 128 of A-Z a-z 0-9 _ . - and not start with . or -") }
                tag = String(t)
                rest = rest[..<colon]
            }
            guard !rest.isEmpty else { throw refuse("no name") }
            guard rest.utf8.count <= 255 else { throw refuse("the name is longer than 255 characters") }
            var components = rest.split(separator: "/", omittingEmptySubsequences: false)
            var registry: String?
            if components.count > 1, let first = components.first,
               first.contains(".") || first.contains(":") || first == "localhost" || first.hasPrefix("[") {
                guard isHost(first) else { throw refuse("registry \"\(first)\" is not HOST[:PORT] (a DNS name, IPv4 or [IPv6], port 1-65535)") }
                registry = String(first)
                components.removeFirst()
            }
            for c in components {
                guard isPathComponent(c) else {
                    throw refuse(c.isEmpty ? "empty path component" : "path component \"\(c)\" must be lowercase letters and digits, separated by ., _, __ or dashes")
                }
            }
            return Reference(registry: registry, repository: components.joined(separator: "/"), tag: tag, digest: digest)
        }

        static func isTag(_ t: Substring) -> Bool {
            guard let first = t.utf8.first, t.utf8.count <= 128, isWord(first) else { return false }
            return t.utf8.allSatisfy { isWord($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        }

        /// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
        static func isPathComponent(_ c: Substring) -> Bool {
            let bytes = Array(c.utf8)
            guard let first = bytes.first, let last = bytes.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
            var i = 0
            while i < bytes.count {
                if isLowerAlnum(bytes[i]) { i += 1; continue }
                // A separator run between two alphanumerics.
                var j = i
                while j < bytes.count, !isLowerAlnum(bytes[j]) { j += 1 }
                let sep = bytes[i..<j]
                let ok = sep.elementsEqual([UInt8(ascii: ".")]) || sep.elementsEqual([UInt8(ascii: "_")])
                    || sep.elementsEqual([UInt8(ascii: "_"), UInt8(ascii: "_")]) || sep.allSatisfy { $0 == UInt8(ascii: "-") }
                guard ok else { return false }
                i = j
            }
            return true
        }

        /// A DNS name, IPv4 address or bracketed IPv6 literal, with an optional port.
        static func isHost(_ h: Substring) -> Bool {
            var host = h
            var port: Substring?
            if h.hasPrefix("[") {
                guard let close = h.firstIndex(of: "]") else { return false }
                let inner = h[h.index(after: h.startIndex)..<close]
                guard !inner.isEmpty, inner.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }),
                      inner.contains(":") else { return false }
                let after = h[h.index(after: close)...]
                if !after.isEmpty {
                    guard after.first == ":" else { return false }
                    port = after.dropFirst()
                }
                host = ""
            } else if let colon = h.firstIndex(of: ":") {
                host = h[..<colon]
                port = h[h.index(after: colon)...]
            }
            if let port {
                guard !port.isEmpty, port.utf8.count <= 5, port.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                      let n = Int(port), n >= 1, n <= 65535 else { return false }
            }
            if host.isEmpty { return h.hasPrefix("[") }
            // domain-component: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
            for label in host.split(separator: ".", omittingEmptySubsequences: false) {
                let b = Array(label.utf8)
                guard let first = b.first, let last = b.last, b.count <= 63, isAlnum(first), isAlnum(last),
                      b.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") }) else { return false }
            }
            return true
        }

        /// Whether pulls from this registry may use plain http: loopback only.
        public var registryIsLoopback: Bool {
            guard let registry else { return false }
            let host: Substring
            if registry.hasPrefix("["), let close = registry.firstIndex(of: "]") {
                host = registry[registry.index(after: registry.startIndex)..<close]
            } else {
                host = registry.split(separator: ":", maxSplits: 1).first ?? ""
            }
            return host == "localhost" || host == "::1" || host == "127.0.0.1"
        }

        private static func isLowerAlnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        private static func isAlnum(_ b: UInt8) -> Bool { isLowerAlnum(b) || (b >= 65 && b <= 90) }
        private static func isWord(_ b: UInt8) -> Bool { isAlnum(b) || b == UInt8(ascii: "_") }
        private static func isHexDigit(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || (b >= 97 && b <= 102) || (b >= 65 && b <= 70) }

        /// A refused reference echoed without control characters.
        static func printable(_ s: String) -> String {
            let shown = String(s.unicodeScalars.prefix(80).map { $0.value < 32 || $0.value == 127 ? "?" : Character($0) })
            return s.unicodeScalars.count > 80 ? shown + "..." : shown
        }
    }
}
