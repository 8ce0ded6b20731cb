import MachineCatalog
import TargetSpec

/// The local decoder's field rules (Sources/TargetSpec), written once as
/// schema data. `KubeRenderTests` and the integration test
/// `KubeRenderSchemaTests` run every example and every bad input through
/// both and fail where they disagree; the rules a schema cannot state
/// (profile bounds, references between fields, file paths, regex syntax,
/// command-line flags) are listed there, with the reason.
extension CRDSchema {
    typealias P = JSONSchemaProps

    /// A DNS-1123 label, as `Names.isDNSLabel` checks.
    static let dnsLabelPattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    /// `ResourceDecoder.isEnvName`: Kubernetes' own rule for env names.
    static let envNamePattern = "^[-._a-zA-Z][-._a-zA-Z0-9]*$"
    /// `ResourceDecoder.isConfigKey`.
    static let configKeyPattern = "^[-._a-zA-Z0-9]+$"
    /// `Quantity.bytes`: digits, not all zero, and one optional suffix.
    static let quantityPattern = "^0*[1-9][0-9]*(Ki|Mi|Gi|Ti|k|K|M|G|T)?$"
    /// `Quantity.duration`: number-unit pairs (Go's syntax), or a bare 0.
    static let durationPattern = "^((([0-9]+[.]?[0-9]*)|([.][0-9]+))(ms|h|m|s))+$|^0$"
    /// `ResourceDecoder.forbiddenExtraArgs` (internal there; a test keeps the two equal).
    static let forbiddenExtraArgs = ["-sandbox", "-monitor", "-qmp", "-qmp-pretty", "-daemonize", "-runas", "-chroot", "-mon", "-chardev", "-serial", "-S"]
    /// Those flags with or without their dash, before any `=`.
    static var forbiddenExtraArgPattern: String {
        let words = forbiddenExtraArgs.map { $0.hasPrefix("-") ? String($0.dropFirst()) : $0 }
        return "^-?(" + words.joined(separator: "|") + ")(=.*)?$"
    }

    static func string(_ description: String? = nil, pattern: String? = nil, minLength: Int? = nil, maxLength: Int? = nil) -> P {
        P(type: "string", description: description, pattern: pattern, minLength: minLength, maxLength: maxLength)
    }
    static func dnsLabel(_ description: String) -> P {
        P(type: "string", description: description, pattern: dnsLabelPattern, maxLength: 63)
    }
    static func enumeration<E: CaseIterable & RawRepresentable>(_ e: E.Type, _ description: String) -> P where E.RawValue == String {
        P(type: "string", description: description, enumValues: e.allCases.map(\.rawValue))
    }
    static func integer(_ description: String, _ range: ClosedRange<Int>) -> P {
        P(type: "integer", description: description, minimum: Double(range.lowerBound), maximum: Double(range.upperBound))
    }
    static func boolean(_ description: String) -> P { P(type: "boolean", description: description) }
    static func duration(_ description: String) -> P {
        P(type: "string", description: description + " (" + Quantity.durationHint + ")", pattern: durationPattern)
    }
    static func quantity(_ description: String) -> P {
        P(type: nil, description: description + " (" + Quantity.syntaxHint + ")", pattern: quantityPattern, intOrString: true)
    }
    static func object(description: String? = nil, required: [String]? = nil, _ properties: [String: P],
                       minProperties: Int? = nil, maxProperties: Int? = nil, oneOf: [P]? = nil, validations: [P.ValidationRule]? = nil) -> P {
        P(type: "object", description: description, properties: properties, required: required,
          minProperties: minProperties, maxProperties: maxProperties, oneOf: oneOf, validations: validations)
    }
    static func array(_ description: String, of items: P, minItems: Int? = nil) -> P {
        P(type: "array", description: description, items: items, minItems: minItems)
    }
    /// A list whose items are unique by `name` (the decoder's "defined twice").
    static func namedList(_ description: String, of items: P) -> P {
        P(type: "array", description: description, items: items, listType: "map", listMapKeys: ["name"])
    }

    // MARK: Lifecycle (QemuVirtualTarget and VirtualTargetInstance)

    static let readiness = object(description: "Ready when this pattern appears on this serial device.", required: ["device", "pattern"], [
        "device": string("A serial device of the target."),
        "pattern": string("A regular expression; empty would match before any output.", minLength: 1),
        "timeout": duration("How long to wait (default 60s)"),
    ])

    static let tests = array("Declarative tests: text sent to a UART, patterns expected back.", of: object(required: ["name", "steps"], [
        "name": string("The test's name."),
        "steps": array("Each step has exactly one of send or expect.", of: object([
            "send": string("Text written to the device."),
            "expect": string("A regular expression awaited on the device.", minLength: 1),
            "timeout": duration("For expect (default 10s)"),
            "device": string("A serial device (default: the first)."),
        ], oneOf: [P(required: ["send"]), P(required: ["expect"])]), minItems: 1),
    ]))

    static let sidecars = array("Processes that live with the target; on a cluster, containers in its Pod.", of: object(required: ["name", "command"], [
        "name": dnsLabel("The sidecar's name."),
        "image": string("The container image on a cluster."),
        "command": array("The command and its arguments.", of: string(), minItems: 1),
        "args": array("Kept for Kubernetes' shape; vtarget runs command.", of: string()),
        "env": array("Environment variables.", of: object(required: ["name"], [
            "name": string("A Kubernetes environment variable name.", pattern: envNamePattern),
            "value": string(),
        ])),
        "role": enumeration(Sidecar.Role.self, "test: its exit code decides Succeeded or Failed; helper (default): lives with the target."),
    ]))

    static var lifecycle: [String: P] {
        [
            "ttl": duration("Stop the instance after this long"),
            "idleTTL": duration("Stop after this long with no client on any endpoint"),
            "restartPolicy": enumeration(RestartPolicy.self, "What happens when QEMU exits."),
            // vtarget also takes true/false; a structural schema cannot say
            // "boolean or string", so the cluster's words are restartPolicy's.
            "record": P(type: "string", description: "Record every run for offline replay (Always), only failed ones (OnFailure), or none (Never).",
                        enumValues: ["Always", "OnFailure", "Never"]),
            "readiness": readiness,
            "tests": tests,
            "sidecars": sidecars,
        ]
    }

    // MARK: QemuVirtualTarget

    static let source = object(description: "Exactly one of configMap, file, hostPath, emptyDisk.", [
        "configMap": object(required: ["name"], [
            "name": dnsLabel("The ConfigMap's name."),
            "key": string("Optional when the ConfigMap has one key.", pattern: configKeyPattern, maxLength: 253),
            "optional": boolean("Accepted for Kubernetes' shape."),
        ]),
        "file": string("Relative to the YAML file, inside its directory."),
        "hostPath": object(required: ["path"], [
            "path": string("An absolute path; only with --allow-host-paths.", pattern: "^/"),
            "type": string(),
        ]),
        "emptyDisk": object(description: "A fresh qcow2 (type: disk only).", required: ["capacity"], ["capacity": quantity("Its size")]),
    ], minProperties: 1, maxProperties: 1)

    static let drive = object(required: ["name", "type", "source"], [
        "name": dnsLabel("The drive's name."),
        "type": enumeration(Drive.Kind.self, "How the image is attached."),
        "format": enumeration(Drive.Format.self, "The image's format (auto sniffs it)."),
        "readonly": boolean("QEMU opens the image read-only."),
        "source": source,
    ], validations: [P.ValidationRule(rule: "!has(self.source.emptyDisk) || self.type == 'disk'",
                                      message: "emptyDisk is for type: disk only")])

    static let device = object(required: ["name", "type"], [
        "name": P(type: "string", description: "The device's name (a DNS-1123 label, not a name vtarget's own files take).",
                  pattern: dnsLabelPattern, maxLength: 63,
                  allOf: [P(not: P(enumValues: ResourceDecoder.reservedDeviceNames)),
                          P(not: P(pattern: "^(" + ResourceDecoder.reservedDevicePrefixes.joined(separator: "|") + ")"))]),
        "type": P(type: "string", description: "serial, socket or can (a CAN bus node), gdb.", enumValues: ["serial", "socket", "can", "gdb"]),
        "index": integer("serial: the machine's UART, by index.", 0...63),
        "rfc2217": boolean("serial: a loopback TCP port speaking RFC 2217 (the local form `rfc2217: PORT` is not in the CRD)."),
        "bus": dnsLabel("can: the bus name shared by targets (default: default)."),
        "uart": integer("can: SLCAN framing over this UART.", 0...63),
        "faults": object(description: "can: faults on the frames this member sends.", [
            "drop": P(type: "number", description: "Share of frames dropped.", minimum: 0, maximum: 1),
            "corrupt": P(type: "number", description: "Share of frames with a bit flipped.", minimum: 0, maximum: 1),
            "delay": P(type: "string", description: "Added to every frame (0s for none).", pattern: durationPattern),
            "busOff": boolean("Off the bus."),
        ]),
    ])

    static var qemuConfig: P {
        object(required: ["machine"], [
            "machine": string("A machine profile's name or alias (vtarget machines).", minLength: 1),
            "cpu": string("A CPU the profile allows."),
            "memory": quantity("Guest RAM"),
            "smp": integer("CPUs (the local form {cores, sockets, threads} is not in the CRD).", 1...1024),
            "accel": enumeration(Accel.self, "auto: kvm when usable, else tcg."),
            "drives": namedList("Firmware, kernels and disks.", of: drive),
            "devices": namedList("Serial ports, CAN nodes, a GDB stub.", of: device),
            "extraArgs": array("Extra QEMU arguments; refused unless --allow-extra-args.",
                               of: P(type: "string", not: P(pattern: forbiddenExtraArgPattern))),
        ])
    }

    static var targetSpec: P {
        var p = lifecycle
        p["architecture"] = enumeration(Architecture.self, "Must agree with the machine profile.")
        p["qemuConfig"] = qemuConfig
        return object(required: ["qemuConfig"], p)
    }

    // MARK: VirtualTargetInstance and VirtualTargetPool

    static let targetRef = object(required: ["name"], [
        "apiVersion": string(),
        "kind": P(type: "string", description: "The target's kind.", enumValues: ["QemuVirtualTarget"]),
        "name": dnsLabel("The target's name."),
    ])

    static var instanceSpec: P {
        var p = lifecycle
        p["targetRef"] = targetRef
        return object(required: ["targetRef"], p)
    }

    static var poolSpec: P {
        object(required: ["targetRef"], [
            "targetRef": targetRef,
            "minReady": integer("Ready members kept (default 1).", 0...256),
            "maxInstances": integer("Members at most (default twice minReady).", 1...1024),
            "recycle": enumeration(VirtualTargetPool.Recycle.self, "How a released member is reset."),
            "claimTTL": duration("How long a claim lasts"),
        ], validations: [P.ValidationRule(
            rule: "!has(self.maxInstances) || !has(self.minReady) || self.maxInstances >= self.minReady",
            message: "maxInstances is below minReady")])
    }

    /// The schema of one kind's objects; status is the controller's, kept as written.
    static func root(spec: P) -> P {
        object(required: ["spec"], [
            "apiVersion": string(),
            "kind": string(),
            "metadata": object(["name": dnsLabel("A DNS-1123 label.")]),
            "spec": spec,
            "status": P(type: "object", description: "Written by vtarget.", preserveUnknownFields: true),
        ])
    }
}
