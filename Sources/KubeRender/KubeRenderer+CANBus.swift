/// A CAN bus on a cluster: a Deployment of one `vtarget can serve BUS
/// --listen` behind a Service of the bus's name; each member's `vtarget run`
/// joins it over socketcand TCP through `VTARGET_REMOTE_CAN`.
extension KubeRenderer {
    /// socketcand's own port, on the bus's Pod and its Service.
    public static let socketcandPort = 29536

    func busObjects(namespace: String, bus: String, members: [Member]) -> [KubeObject] {
        let name = KubeNames.label("can", bus)
        var seen = Set<String>()
        let origins = members.flatMap(\.origins).filter { seen.insert("\($0.kind)/\($0.name)").inserted }
        var where_ = Set<String>()
        let annotations = [
            KubeLabels.madeFrom: origins.map { "\($0.kind)/\($0.name)" }.joined(separator: ", "),
            KubeLabels.source: origins.map { "\($0.location)" }.filter { where_.insert($0).inserted }.joined(separator: ", "),
        ]
        let selector = [KubeLabels.managedBy: KubeLabels.manager, KubeLabels.name: name]
        let labels = selector.merging([KubeLabels.component: "can-bus"]) { $1 }
        let container = Container(
            name: "can-bus", image: options.image,
            command: ["vtarget", "can", "serve", bus, "-n", namespace, "--listen", "0.0.0.0:\(Self.socketcandPort)"],
            env: [.init(name: "VTARGET_RUNTIME_DIR", value: Paths.runtime)],
            ports: [.init(name: "socketcand", containerPort: Self.socketcandPort)],
            volumeMounts: [.init(name: "run", mountPath: Paths.shared)],
            readinessProbe: Probe(tcpSocket: .init(port: Self.socketcandPort), periodSeconds: 2))
        let pod = PodSpec(restartPolicy: "Always",
                          securityContext: .init(runAsUser: Self.podUser, runAsGroup: Self.podUser, fsGroup: Self.podUser),
                          containers: [container], volumes: [Volume(name: "run", emptyDir: .init())])
        let deployment = Deployment(
            metadata: ObjectMetadata(name: name, namespace: namespace, labels: labels, annotations: annotations),
            spec: .init(replicas: 1, selector: .init(matchLabels: selector),
                        template: PodTemplate(metadata: ObjectMetadata(name: name, labels: labels), spec: pod)))
        let service: JSONValue = [
            "apiVersion": "v1", "kind": "Service",
            "metadata": ["name": .string(name), "namespace": .string(namespace),
                         "labels": .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }),
                         "annotations": .object(annotations.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })],
            "spec": [
                "selector": .object(selector.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }),
                "ports": [["name": "socketcand", "port": .int(Self.socketcandPort), "targetPort": "socketcand", "protocol": "TCP"]],
            ],
        ]
        return [.deployment(deployment), .manifest(Manifest(kind: "Service", name: name, body: service))]
    }

    /// `VTARGET_REMOTE_CAN` for a Pod whose targets are on CAN buses: each
    /// bus at its Service, in the Pod's namespace.
    func remoteBusVariable(_ unit: Unit) -> [Container.EnvVar] {
        var buses: [String] = []
        for m in unit.members { for b in Self.buses(m.target) where !buses.contains(b) { buses.append(b) } }
        guard !buses.isEmpty else { return [] }
        return [.init(name: "VTARGET_REMOTE_CAN",
                      value: buses.map { "\($0)=\(KubeNames.label("can", $0)):\(Self.socketcandPort)" }.joined(separator: ","))]
    }
}
