/// What `vtarget render --for kubernetes` and `vtarget crds` print: each a
/// Kubernetes object with only the fields vtarget fills.
public enum KubeObject: Encodable, Sendable {
    case configMap(ConfigMapObject)
    case pod(Pod)
    case job(Job)
    case deployment(Deployment)
    case crd(CustomResourceDefinition)
    /// An object written as data: KubeVirt's kinds and the PVCs of a Viti Machine.
    case manifest(Manifest)

    public var kind: String {
        switch self {
        case .configMap: return "ConfigMap"
        case .pod: return "Pod"
        case .job: return "Job"
        case .deployment: return "Deployment"
        case .crd: return "CustomResourceDefinition"
        case .manifest(let o): return o.kind
        }
    }

    public var name: String {
        switch self {
        case .configMap(let o): return o.metadata.name
        case .pod(let o): return o.metadata.name
        case .job(let o): return o.metadata.name
        case .deployment(let o): return o.metadata.name
        case .crd(let o): return o.metadata.name
        case .manifest(let o): return o.name
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .configMap(let o): try o.encode(to: encoder)
        case .pod(let o): try o.encode(to: encoder)
        case .job(let o): try o.encode(to: encoder)
        case .deployment(let o): try o.encode(to: encoder)
        case .crd(let o): try o.encode(to: encoder)
        case .manifest(let o): try o.body.encode(to: encoder)
        }
    }
}

/// A whole object as a JSON value (`apiVersion`, `kind`, `metadata`, ...).
public struct Manifest: Sendable {
    public var kind: String
    public var name: String
    public var body: JSONValue

    public init(kind: String, name: String, body: JSONValue) {
        self.kind = kind
        self.name = name
        self.body = body
    }
}

public struct ObjectMetadata: Encodable, Sendable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?

    public init(name: String, namespace: String? = nil, labels: [String: String]? = nil, annotations: [String: String]? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }
}

public struct ConfigMapObject: Encodable, Sendable {
    public var apiVersion = "v1"
    public var kind = "ConfigMap"
    public var metadata: ObjectMetadata
    public var data: [String: String]
    public var binaryData: [String: String]? = nil
}

public struct Pod: Encodable, Sendable {
    public var apiVersion = "v1"
    public var kind = "Pod"
    public var metadata: ObjectMetadata
    public var spec: PodSpec
}

public struct Job: Encodable, Sendable {
    public var apiVersion = "batch/v1"
    public var kind = "Job"
    public var metadata: ObjectMetadata
    public var spec: Spec

    public struct Spec: Encodable, Sendable {
        public var activeDeadlineSeconds: Int
        public var backoffLimit: Int
        public var template: PodTemplate
    }
}

public struct Deployment: Encodable, Sendable {
    public var apiVersion = "apps/v1"
    public var kind = "Deployment"
    public var metadata: ObjectMetadata
    public var spec: Spec

    public struct Spec: Encodable, Sendable {
        public var replicas: Int
        public var selector: Selector
        public var template: PodTemplate
    }

    public struct Selector: Encodable, Sendable {
        public var matchLabels: [String: String]
    }
}

public struct PodTemplate: Encodable, Sendable {
    public var metadata: ObjectMetadata?
    public var spec: PodSpec
}

public struct PodSpec: Encodable, Sendable {
    public var restartPolicy: String
    public var securityContext: PodSecurityContext?
    public var initContainers: [Container]?
    public var containers: [Container]
    public var volumes: [Volume]
}

public struct PodSecurityContext: Encodable, Sendable {
    public var runAsUser: Int
    public var runAsGroup: Int
    public var fsGroup: Int
}

public struct Container: Encodable, Sendable {
    public var name: String
    public var image: String
    public var command: [String]
    public var env: [EnvVar]?
    public var ports: [ContainerPort]?
    public var resources: Resources?
    public var volumeMounts: [VolumeMount]
    public var readinessProbe: Probe?
    public var startupProbe: Probe?
    /// `Always` on an init container makes it a native sidecar (Kubernetes ≥ 1.29).
    public var restartPolicy: String?

    public struct EnvVar: Encodable, Sendable {
        public var name: String
        public var value: String
    }

    public struct ContainerPort: Encodable, Sendable {
        public var name: String
        public var containerPort: Int
        public var `protocol` = "TCP"
    }

    public struct Resources: Encodable, Sendable {
        public var limits: [String: String]
    }

    public struct VolumeMount: Encodable, Sendable {
        public var name: String
        public var mountPath: String
        public var subPath: String?
        public var readOnly: Bool?
    }
}

public struct Probe: Encodable, Sendable {
    public var exec: Exec?
    public var tcpSocket: TCPSocket?
    public var periodSeconds: Int
    public var failureThreshold: Int?

    public init(exec: Exec? = nil, tcpSocket: TCPSocket? = nil, periodSeconds: Int, failureThreshold: Int? = nil) {
        self.exec = exec
        self.tcpSocket = tcpSocket
        self.periodSeconds = periodSeconds
        self.failureThreshold = failureThreshold
    }

    public struct Exec: Encodable, Sendable {
        public var command: [String]
    }

    public struct TCPSocket: Encodable, Sendable {
        public var port: Int
    }
}

public struct Volume: Encodable, Sendable {
    public var name: String
    public var configMap: ConfigMapSource?
    public var emptyDir: EmptyDir?

    public struct ConfigMapSource: Encodable, Sendable {
        public var name: String
    }

    public struct EmptyDir: Encodable, Sendable {}
}
