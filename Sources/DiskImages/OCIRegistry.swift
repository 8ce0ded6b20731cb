import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One repository of one registry, over the distribution API v2: manifests
/// and blobs by GET, anonymous, with the `WWW-Authenticate: Bearer` token
/// dance public registries ask even of anonymous clients.
struct OCIRegistry {
    let client: HTTPClient
    /// `http(s)://host[:port]`.
    let base: String
    let repository: String
    /// http is allowed for the token realm only where it is for the registry.
    let plainHTTPAllowed: Bool
    private var token: String?

    init(client: HTTPClient, base: String, repository: String, plainHTTPAllowed: Bool) {
        self.client = client
        self.base = base
        self.repository = repository
        self.plainHTTPAllowed = plainHTTPAllowed
    }

    /// Manifests are small; a slow registry gets this long for one.
    static let manifestTimeout = TimeAmount.seconds(60)
    /// A blob may be gigabytes: the whole transfer's ceiling (a stalled one
    /// is ended sooner by the client's read timeout).
    static let blobTimeout = TimeAmount.hours(6)

    /// The manifest `reference` (a tag or a digest) names: its bytes, the
    /// registry's Content-Type, and their digest.
    mutating func manifest(_ reference: String) async throws(ImageStoreError) -> (bytes: [UInt8], contentType: String?, digest: OCIDigest) {
        let response = try await get("/v2/\(repository)/manifests/\(reference)", accept: OCIManifest.MediaType.accepted, timeout: Self.manifestTimeout,
                                     what: "\(repository):\(reference)")
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: OCIManifest.maximumSize)
        } catch {
            throw ImageStoreError(.registry, "reading the manifest of \(repository):\(reference) from \(base) (at most \(OCIManifest.maximumSize) bytes)", cause: error)
        }
        let bytes = Array(body.readableBytesView)
        return (bytes, response.headers.first(name: "Content-Type"), OCIDigest.of(bytes))
    }

    /// Streams blob `digest` into the new file `path`, hashing as it
    /// writes; refuses (and removes the file) unless both sha256 and size
    /// are what the manifest promised.
    mutating func blob(_ digest: OCIDigest, size: UInt64, to path: String) async throws(ImageStoreError) {
        let response = try await get("/v2/\(repository)/blobs/\(digest)", accept: ["*/*"], timeout: Self.blobTimeout, what: "blob \(digest)")
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageStoreError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        var hasher = OCIDigest.Hasher()
        var received: UInt64 = 0
        do {
            defer { close(fd) }
            for try await chunk in response.body {
                received += UInt64(chunk.readableBytes)
                guard received <= size else {
                    throw ImageStoreError(.verification, "blob \(digest) from \(base): more than the \(size) bytes the manifest says; refused")
                }
                let ok = chunk.withUnsafeReadableBytes { buffer in
                    hasher.update(buffer)
                    return StoreFiles.writeAll(fd, buffer)
                }
                guard ok else { throw ImageStoreError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
            }
        } catch {
            unlink(path)
            if let e = error as? ImageStoreError { throw e }
            throw ImageStoreError(.registry, "downloading blob \(digest) from \(base)", cause: error)
        }
        let got = hasher.finish()
        guard received == size, got == digest else {
            unlink(path)
            throw ImageStoreError(.verification, "blob \(digest) from \(base)/\(repository): received \(received) bytes with \(got), the manifest says \(size) bytes with \(digest); refused, nothing stored")
        }
    }

    /// A GET that answers 200, after at most one Bearer token round.
    private mutating func get(_ path: String, accept: [String], timeout: TimeAmount, what: String) async throws(ImageStoreError) -> HTTPClientResponse {
        var authenticated = false
        while true {
            var request = HTTPClientRequest(url: base + path)
            request.headers.add(name: "Accept", value: accept.joined(separator: ", "))
            if let token { request.headers.add(name: "Authorization", value: "Bearer " + token) }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: timeout)
            } catch {
                throw ImageStoreError(.registry, "cannot reach the registry at \(base) (GET \(path))", cause: error)
            }
            if response.status == .ok { return response }
            let said = await Self.errorText(response)
            if response.status == .unauthorized, !authenticated,
               let challenge = response.headers.first(name: "WWW-Authenticate").flatMap(Challenge.init(parsing:)) {
                guard challenge.scheme == "bearer" else {
                    throw ImageStoreError(.registry, "\(base) asks for \(challenge.scheme) credentials; vtarget pulls anonymously only")
                }
                token = try await fetchToken(challenge)
                authenticated = true
                continue
            }
            switch response.status {
            case .notFound:
                throw ImageStoreError(.notFound, "\(base) has no \(what)" + (said.isEmpty ? "" : " (\(said))"))
            case .unauthorized, .forbidden:
                throw ImageStoreError(.registry, "\(base) refuses anonymous access to \(repository): HTTP \(response.status.code)" + (said.isEmpty ? "" : " (\(said))"))
            default:
                throw ImageStoreError(.registry, "GET \(base)\(path): HTTP \(response.status.code)" + (said.isEmpty ? "" : " (\(said))"))
            }
        }
    }

    /// The registry's `{"errors":[{"code","message"}]}`, or its raw text, short.
    private static func errorText(_ response: HTTPClientResponse) async -> String {
        guard let body = try? await response.body.collect(upTo: 64 << 10) else { return "" }
        struct Errors: Decodable { struct E: Decodable { var code: String?; var message: String? }; var errors: [E] }
        let data = Data(body.readableBytesView)
        if let e = try? JSONDecoder().decode(Errors.self, from: data), !e.errors.isEmpty {
            return e.errors.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; ")
        }
        return String(String(decoding: data, as: UTF8.self).prefix(200)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// An anonymous token from the challenge's realm.
    private func fetchToken(_ challenge: Challenge) async throws(ImageStoreError) -> String {
        guard let realm = challenge.parameters["realm"], var url = URLComponents(string: realm),
              url.scheme == "https" || (url.scheme == "http" && plainHTTPAllowed) else {
            throw ImageStoreError(.registry, "\(base) names token realm \(challenge.parameters["realm"] ?? "none"); expected an https URL")
        }
        var query = url.queryItems ?? []
        if let service = challenge.parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
        query.append(URLQueryItem(name: "scope", value: challenge.parameters["scope"] ?? "repository:\(repository):pull"))
        url.queryItems = query
        guard let address = url.string else { throw ImageStoreError(.registry, "token realm \(realm) is not a usable URL") }
        do {
            let response = try await client.execute(HTTPClientRequest(url: address), timeout: Self.manifestTimeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else {
                throw ImageStoreError(.registry, "token service \(realm): HTTP \(response.status.code)")
            }
            struct Token: Decodable { var token: String?; var access_token: String? }
            let t = try JSONDecoder().decode(Token.self, from: Data(body.readableBytesView))
            guard let value = t.token ?? t.access_token, !value.isEmpty else {
                throw ImageStoreError(.registry, "token service \(realm) answered without a token")
            }
            return value
        } catch let e as ImageStoreError {
            throw e
        } catch {
            throw ImageStoreError(.registry, "cannot get a token from \(realm)", cause: error)
        }
    }

    /// `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`.
    struct Challenge: Equatable {
        /// Lowercased: `bearer`, `basic`.
        var scheme: String
        var parameters: [String: String]

        init?(parsing header: String) {
            let trimmed = header.drop { $0 == " " }
            guard let space = trimmed.firstIndex(of: " ") else {
                guard !trimmed.isEmpty else { return nil }
                scheme = trimmed.lowercased()
                parameters = [:]
                return
            }
            scheme = trimmed[..<space].lowercased()
            var params: [String: String] = [:]
            var rest = trimmed[trimmed.index(after: space)...]
            while true {
                rest = rest.drop { $0 == " " || $0 == "," }
                guard let eq = rest.firstIndex(of: "=") else { break }
                let key = rest[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
                rest = rest[rest.index(after: eq)...]
                var value = ""
                if rest.first == "\"" {
                    rest = rest.dropFirst()
                    var escaped = false
                    var end = rest.endIndex
                    for i in rest.indices {
                        let c = rest[i]
                        if escaped { value.append(c); escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { end = i; break } else { value.append(c) }
                    }
                    guard end != rest.endIndex else { return nil }
                    rest = rest[rest.index(after: end)...]
                } else {
                    let end = rest.firstIndex(of: ",") ?? rest.endIndex
                    value = rest[..<end].trimmingCharacters(in: .whitespaces)
                    rest = rest[end...]
                }
                guard !key.isEmpty else { return nil }
                params[key] = value
            }
            parameters = params
        }
    }
}
