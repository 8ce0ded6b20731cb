#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import ControlAPI
import ResourceKit
import InstanceContract
import Hummingbird
import Logging
import MachineCatalog
import NIOCore
import ServiceLifecycle
import HostOS
import TargetRuntime

/// The request context: the connection, so each request can be checked
/// against the peer's credentials (SO_PEERCRED).
struct PeerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    /// `:namespace` and `:name` of the route.
    var object: (String, String) { (parameters.get("namespace") ?? "", parameters.get("name") ?? "") }

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The control API: HTTP+JSON on a unix socket, the routes of the README's
/// "Control API" section. Nothing listens on the network.
public struct ControlServer: Sendable {
    let supervisor: Supervisor
    let policy: AccessPolicy
    let socketPath: String
    /// With `--socket-group`: the socket is 0660 and owned by this group.
    let socketGroup: gid_t?
    /// Bounds on each request; the apply route collects at most `maxBody`.
    public var limits = RequestLimits()

    public init(supervisor: Supervisor, policy: AccessPolicy, socketPath: String, socketGroup: gid_t?) {
        self.supervisor = supervisor
        self.policy = policy
        self.socketPath = socketPath
        self.socketGroup = socketGroup
    }

    /// Serves until SIGTERM/SIGINT (or POST /v1/shutdown), then returns.
    public func run(onReady: @escaping @Sendable () -> Void = {}) async throws {
        unlink(socketPath)
        var logger = Logger(label: "vtarget.serve")
        logger.logLevel = .warning
        let router = Router(context: PeerContext.self)
        router.add(middleware: APIErrorMiddleware())
        routes(router)
        let path = socketPath, group = socketGroup
        let app = Application(
            router: router, server: LimitedHTTP1Channel.builder(limits), configuration: .init(address: .unixDomainSocket(path: path)),
            services: [StatusLoop(supervisor: supervisor)],
            onServerRunning: { _ in
                if let group {
                    chown(path, getuid(), group)
                    chmod(path, 0o660)
                } else {
                    chmod(path, 0o600)
                }
                onReady()
            }, logger: logger)
        try await app.runService()
        unlink(path)
    }

    struct StatusLoop: Service {
        let supervisor: Supervisor
        func run() async throws {
            try await cancelWhenGracefulShutdown { await supervisor.watchStatusChanges() }
        }
    }

    // MARK: - Routes

    func routes(_ router: Router<PeerContext>) {
        let sup = supervisor
        let limits = self.limits
        router.get("/v1/status") { _, ctx in
            try await self.guarded(ctx, namespace: nil) { _ in json(try await sup.status()) }
        }
        router.post("/v1/shutdown") { req, ctx in
            try await self.guarded(ctx, namespace: nil, ownerOnly: true) { _ in
                if req.uri.queryParameters.get("stopInstances") == "1" { try await sup.stopAll() }
                // runService turns SIGTERM into a graceful shutdown.
                kill(getpid(), SIGTERM)
                return json(["stopping": true])
            }
        }
        router.post("/v1/apply") { req, ctx in
            let body = try await req.body.collect(upTo: limits.maxBody)
            let request: ApplyRequest
            do { request = try JSONDecoder().decode(ApplyRequest.self, from: Data(buffer: body)) } catch {
                return errorResponse(400, "the body is not an apply request: \(error)")
            }
            // A cluster-scoped object is the cluster scope's, whatever namespace it names.
            let namespaces = Set(request.resources.map { KindRegistry.builtIn.storedNamespace(kind: $0.kind, $0.namespace) })
            return try await self.guarded(ctx, namespaces: namespaces) { caller in
                // Privileges come from who asks, never from what the request says.
                let widening = request.resources.filter { $0.options.allowHostPaths || $0.options.allowExtraArgs }
                if !caller.privileged, let r = widening.first {
                    return errorResponse(403, "forbidden: \(r.kind) \"\(r.name)\": --allow-host-paths and --allow-extra-args are for the supervisor's own user; "
                                         + "uid \(caller.uid) may apply without them")
                }
                return json(try await sup.apply(request, owner: caller.owner))
            }
        }
        listing(router, "/v1/resources") { ns, req in try await sup.resources(kind: req.uri.queryParameters.get("kind"), namespace: ns) }
        listing(router, "/v1/instances") { ns, _ in try await sup.instances(namespace: ns) }
        listing(router, "/v1/pools") { ns, _ in try await sup.pools(namespace: ns) }
        listing(router, "/v1/bundles") { ns, req in await sup.bundles(namespace: ns, name: req.uri.queryParameters.get("name")) }
        router.delete("/v1/resources/:kind/:namespace/:name") { _, ctx in
            let (kind, given, name) = (ctx.parameters.get("kind") ?? "", ctx.parameters.get("namespace") ?? "", ctx.parameters.get("name") ?? "")
            let ns = KindRegistry.builtIn.storedNamespace(kind: kind, given)
            return try await self.guarded(ctx, namespace: ns) { _ in json(try await sup.delete(kind: kind, namespace: ns, name: name)) }
        }
        // A cluster-scoped object, in no namespace (the router reads `K//name` as this). The
        // router's tree needs the second segment named as in the route above; it is the name.
        router.delete("/v1/resources/:kind/:namespace") { _, ctx in
            let (kind, name) = (ctx.parameters.get("kind") ?? "", ctx.parameters.get("namespace") ?? "")
            return try await self.guarded(ctx, namespace: KindRegistry.clusterScope) { _ in
                json(try await sup.delete(kind: kind, namespace: KindRegistry.clusterScope, name: name))
            }
        }
        router.get("/v1/instances/:namespace/:name") { _, ctx in
            let (ns, name) = ctx.object
            return try await self.guarded(ctx, namespace: ns) { _ in json(try await sup.describe(namespace: ns, name: name)) }
        }
        for action in ["start", "stop", "release"] {
            router.post("/v1/instances/:namespace/:name/\(action)") { req, ctx in
                let (ns, name) = ctx.object
                let paused = req.uri.queryParameters.get("paused") == "1"
                let force = req.uri.queryParameters.get("force") == "1"
                let grace = req.uri.queryParameters.get("gracePeriod").flatMap { Double($0) }
                return try await self.guarded(ctx, namespace: ns) { _ in
                    switch action {
                    case "start": return json(try await sup.start(namespace: ns, name: name, paused: paused))
                    case "stop": return json(try await sup.stop(namespace: ns, name: name, force: force, gracePeriod: grace))
                    default: return json(try await sup.release(namespace: ns, name: name))
                    }
                }
            }
        }
        router.post("/v1/pools/:namespace/:name/claim") { req, ctx in
            let (ns, name) = ctx.object
            let ttl = req.uri.queryParameters.get("ttl").flatMap { Double($0) }
            let timeout = req.uri.queryParameters.get("timeout").flatMap { Double($0) } ?? 30
            // Seconds as the CLI's durations allow: finite, not negative, at most a year.
            for (name, value) in [("ttl", ttl), ("timeout", timeout)] {
                if let v = value, !(v.isFinite && v >= 0 && v <= Quantity.maxDurationSeconds) {
                    return errorResponse(400, "\(name): expected seconds from 0 to \(Int(Quantity.maxDurationSeconds)), got \(v)")
                }
            }
            return try await self.guarded(ctx, namespace: ns) { _ in
                json(try await sup.claim(namespace: ns, pool: name, ttl: ttl, timeout: timeout))
            }
        }
        router.get("/v1/events") { req, ctx in
            let ns = req.uri.queryParameters.get("namespace")
            let after = req.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
            let watch = req.uri.queryParameters.get("watch") == "1"
            return try await self.guarded(ctx, namespace: ns) { caller in
                let allowed = caller.allows
                guard watch else { return json(try await sup.events(namespace: ns, after: after).filter { allowed($0.namespace) }) }
                // Subscribe first, then send the backlog: nothing falls between.
                let (id, live) = await sup.subscribe()
                let backlog = try await sup.events(namespace: ns, after: after).filter { allowed($0.namespace) }
                return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                    var last = after
                    func line(_ e: EventInfo) -> ByteBuffer {
                        ByteBuffer(bytes: ((try? JSONEncoder().encode(e)) ?? Data()) + [0x0A])
                    }
                    do {
                        for e in backlog {
                            try await writer.write(line(e))
                            last = e.id
                        }
                        // A stopping server waits for open responses: this one ends
                        // when the stream does, so shutting down ends the stream.
                        try await withGracefulShutdownHandler {
                            for await e in live where e.id > last && (ns == nil || e.namespace == ns) && allowed(e.namespace) {
                                try await writer.write(line(e))
                            }
                        } onGracefulShutdown: {
                            Task { await sup.unsubscribe(id) }
                        }
                    } catch {}
                    await sup.unsubscribe(id)
                    try await writer.finish(nil)
                })
            }
        }
    }

    /// GET PATH?namespace=NS: what `fetch` returns, less what the peer may not see.
    func listing<T: Encodable & Namespaced>(_ router: Router<PeerContext>, _ path: RouterPath,
                                            _ fetch: @escaping @Sendable (String?, Request) async throws -> [T]) {
        router.get(path) { req, ctx in
            let ns = req.uri.queryParameters.get("namespace")
            return try await self.guarded(ctx, namespace: ns) { caller in
                json(try await fetch(ns, req).filter { caller.allows($0.namespace) })
            }
        }
    }

    /// Runs `body` if the peer may touch `namespace` (nil: a listing, which
    /// `allowed` then filters); 403 and a log line otherwise.
    func guarded(_ ctx: PeerContext, namespace: String?, ownerOnly: Bool = false,
                 _ body: (Caller) async throws -> Response) async throws -> Response {
        try await guarded(ctx, namespaces: namespace.map { [$0] } ?? [], ownerOnly: ownerOnly, body)
    }

    func guarded(_ ctx: PeerContext, namespaces: Set<String>, ownerOnly: Bool = false,
                 _ body: (Caller) async throws -> Response) async throws -> Response {
        let peer = await PeerCredentials.of(ctx.channel)
        let grant = policy.grant(for: peer)
        let denied = ownerOnly ? (grant.all ? [] : ["(supervisor)"]) : namespaces.filter { !grant.allows($0) }.sorted()
        if peer == nil || !denied.isEmpty || (!grant.all && grant.namespaces.isEmpty) {
            let who = peer.map { "uid \($0.uid) gid \($0.gid)" } ?? "an unknown peer"
            FileDescriptors.logLine("vtarget serve: forbidden: \(who) asked for namespace(s) \(denied.isEmpty ? "any" : denied.joined(separator: ", "))")
            return errorResponse(403, "forbidden: \(who) may not use namespace(s) \(denied.isEmpty ? "here" : denied.joined(separator: ", "))")
        }
        do {
            let owner = ProcessOwner(uid: peer!.uid, gid: peer!.gid, groups: peer!.groups)
            return try await body(Caller(uid: peer!.uid, owner: owner, privileged: grant.all, allows: { grant.allows($0) }))
        } catch let e as SupervisorError {
            return json(APIErrorBody(code: e.status, message: e.message, diagnostics: e.diagnostics.isEmpty ? nil : e.diagnostics), status: e.status)
        }
    }
}

/// Who asked, as the server decides it from SO_PEERCRED and the policy.
struct Caller: Sendable {
    var uid: uid_t
    /// Its uid, gid and groups: what its sidecars will run as.
    var owner: ProcessOwner
    /// The supervisor's own user or root: every namespace, and the options
    /// that widen what a spec may reach (host paths, extra QEMU arguments).
    var privileged: Bool
    var allows: @Sendable (String) -> Bool
}

func json<T: Encodable>(_ value: T, status: Int = 200) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
    return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

func errorResponse(_ status: Int, _ message: String) -> Response {
    json(APIErrorBody(code: status, message: message), status: status)
}

extension FileDescriptors {
    static func logLine(_ s: String) { writeAll(2, Array((s + "\n").utf8)) }
}

/// What a listing filters by namespace.
protocol Namespaced { var namespace: String { get } }
extension ResourceInfo: Namespaced {}
extension InstanceInfo: Namespaced {}
extension PoolInfo: Namespaced {}
extension BundleInfo: Namespaced {}
