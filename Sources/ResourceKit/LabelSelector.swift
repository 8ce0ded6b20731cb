/// kubectl's label selector (`-l`): requirements joined by commas, all of
/// which must hold.
public struct LabelSelector: Sendable, Equatable, CustomStringConvertible {
    public enum Requirement: Sendable, Equatable {
        /// `k=v`, `k==v`
        case equals(String, String)
        /// `k!=v`: also true when `k` is absent, as in Kubernetes.
        case notEquals(String, String)
        /// `k in (a,b)`
        case `in`(String, [String])
        /// `k notin (a,b)`: also true when `k` is absent.
        case notIn(String, [String])
        /// `k`
        case exists(String)
        /// `!k`
        case doesNotExist(String)

        public func matches(_ labels: [String: String]) -> Bool {
            switch self {
            case .equals(let k, let v): return labels[k] == v
            case .notEquals(let k, let v): return labels[k] != v
            case .in(let k, let vs): return labels[k].map(vs.contains) ?? false
            case .notIn(let k, let vs): return !(labels[k].map(vs.contains) ?? false)
            case .exists(let k): return labels[k] != nil
            case .doesNotExist(let k): return labels[k] == nil
            }
        }
    }

    public var requirements: [Requirement]

    public init(_ requirements: [Requirement]) { self.requirements = requirements }

    /// The empty selector matches everything, as kubectl's does.
    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { $0.matches(labels) }
    }

    public var description: String {
        requirements.map { r in
            switch r {
            case .equals(let k, let v): return "\(k)=\(v)"
            case .notEquals(let k, let v): return "\(k)!=\(v)"
            case .in(let k, let vs): return "\(k) in (\(vs.joined(separator: ",")))"
            case .notIn(let k, let vs): return "\(k) notin (\(vs.joined(separator: ",")))"
            case .exists(let k): return k
            case .doesNotExist(let k): return "!\(k)"
            }
        }.joined(separator: ",")
    }
}

/// Why a selector does not parse, with the text that was given.
public struct SelectorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var selector: String
    public var reason: String

    public var description: String { "unable to parse selector \"\(selector)\": \(reason)" }
}
