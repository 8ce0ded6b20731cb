import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One file fetched by GET into a new local file: a DataVolume's `http`
/// source, which CDI imports once when the volume is made. Redirects are
/// followed; what arrives is written as it comes, and a failed or short
/// transfer leaves no file.
public enum HTTPDownload {
    /// The whole transfer's ceiling; a stalled one ends sooner, at the read timeout.
    static let timeout = TimeAmount.hours(6)

    /// `url` (http or https) into the new file `path`; the bytes written.
    public static func fetch(_ url: String, to path: String) async throws(ImageStoreError) -> UInt64 {
        try await withClient { client throws(ImageStoreError) in try await fetch(url, to: path, with: client) }
    }

    /// A client as vtarget's downloads want it (image pulls too): redirects
    /// followed, bytes as sent (no transparent decompression: digests are of
    /// what the server sent), bounded connect and read; shut down after `body`.
    static func withClient<T>(_ body: (HTTPClient) async throws(ImageStoreError) -> T) async throws(ImageStoreError) -> T {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .follow(max: 5, allowCycles: false),
            timeout: .init(connect: .seconds(15), read: .seconds(120)))
        configuration.decompression = .disabled
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result: Result<T, ImageStoreError>
        do {
            result = .success(try await body(client))
        } catch {
            result = .failure(error)
        }
        try? await client.shutdown()
        return try result.get()
    }

    private static func fetch(_ url: String, to path: String, with client: HTTPClient) async throws(ImageStoreError) -> UInt64 {
        let response: HTTPClientResponse
        do {
            response = try await client.execute(HTTPClientRequest(url: url), timeout: timeout)
        } catch {
            throw ImageStoreError(.registry, "cannot fetch \(url)", cause: error)
        }
        guard response.status == .ok else {
            throw ImageStoreError(response.status == .notFound ? .notFound : .registry, "GET \(url): HTTP \(response.status.code)")
        }
        let expected = response.headers.first(name: "Content-Length").flatMap { UInt64($0) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageStoreError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
        var received: UInt64 = 0
        do {
            defer { close(fd) }
            for try await chunk in response.body {
                received += UInt64(chunk.readableBytes)
                let ok = chunk.withUnsafeReadableBytes { StoreFiles.writeAll(fd, $0) }
                guard ok else { throw ImageStoreError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
            }
        } catch {
            unlink(path)
            if let e = error as? ImageStoreError { throw e }
            throw ImageStoreError(.registry, "downloading \(url)", cause: error)
        }
        if let expected, expected != received {
            unlink(path)
            throw ImageStoreError(.verification, "GET \(url): \(received) bytes arrived of the \(expected) announced; nothing kept")
        }
        return received
    }
}
