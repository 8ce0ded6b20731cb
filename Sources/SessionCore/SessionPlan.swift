/// What a session machine needs to know of a run, and nothing it would have
/// to do I/O for: names, what each target waits for, what it starts. Built
/// by the shell from the specs and launch plans; tests build it by hand.
public struct SessionPlan: Sendable {
    public struct Target: Sendable {
        public var name: String
        /// The first UART: where steps without a `device` go.
        public var defaultDevice: String
        public var readiness: Readiness?
        public var idleTTLSeconds: Double?
        public var tests: [Test]
        public var sidecars: [Sidecar]

        public init(name: String, defaultDevice: String = "uart0", readiness: Readiness? = nil, idleTTLSeconds: Double? = nil,
                    tests: [Test] = [], sidecars: [Sidecar] = []) {
            self.name = name
            self.defaultDevice = defaultDevice
            self.readiness = readiness
            self.idleTTLSeconds = idleTTLSeconds
            self.tests = tests
            self.sidecars = sidecars
        }
    }

    public struct Readiness: Sendable {
        public var device: String
        public var pattern: String
        public var timeoutSeconds: Double
        public init(device: String, pattern: String, timeoutSeconds: Double) {
            self.device = device
            self.pattern = pattern
            self.timeoutSeconds = timeoutSeconds
        }
    }

    /// A declarative test: text sent to a UART, patterns expected back.
    public struct Test: Sendable {
        public enum Step: Sendable {
            case send(String, device: String?)
            case expect(pattern: String, timeoutSeconds: Double, device: String?)
        }
        public var name: String
        public var steps: [Step]
        public init(name: String, steps: [Step]) {
            self.name = name
            self.steps = steps
        }
    }

    public struct Sidecar: Sendable {
        public var name: String
        /// A test sidecar's exit code decides Succeeded/Failed; a helper only lives with its target.
        public var isTest: Bool
        public init(name: String, isTest: Bool) {
            self.name = name
            self.isTest = isTest
        }
    }

    public var targets: [Target]
    /// `--until`: exit 0 once any serial output matches.
    public var until: String?
    public var timeoutSeconds: Double?
    /// The run's TTL: `--ttl`, else the smallest of the targets'.
    public var ttlSeconds: Double?
    /// `-- CMD ARGS`; empty without one.
    public var command: [String]

    public init(targets: [Target], until: String? = nil, timeoutSeconds: Double? = nil, ttlSeconds: Double? = nil, command: [String] = []) {
        self.targets = targets
        self.until = until
        self.timeoutSeconds = timeoutSeconds
        self.ttlSeconds = ttlSeconds
        self.command = command
    }
}

