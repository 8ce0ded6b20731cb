import ControlAPI
import ResourceKit
import YAMLTree

extension Get {
    /// kubectl's `get -w`: the listing, then what changed after each of the
    /// supervisor's events, until interrupted or the supervisor ends the stream.
    /// Every event re-lists, whatever its object: an instance's event changes
    /// its pool's counts too, and only objects whose tree changed are printed.
    func watchChanges(_ listing: ObjectListing, _ client: ControlClient) async throws {
        // Events up to now are already reflected in the first listing.
        let past: [EventInfo] = try await client.get("/v1/events?" + ns.query)
        var shown: [String: (object: ObjectListing.Object, text: String)] = [:]
        var widths: [Int]?
        let wide = output == "wide"

        func show(_ changed: [ObjectListing.Object]) {
            switch output {
            case "json": for o in changed { printOut(Table.json(o.node)) }
            case "yaml": for o in changed { printOut("---\n" + YAMLEmitter.emit(o.node), terminator: "") }
            case "name": for o in changed { printOut("\(listing.kind.qualifiedName)/\(o.name)") }
            default:
                guard !changed.isEmpty else { return }
                var rows = changed.map { listing.row($0, wide: wide) }
                // Columns keep the widths of the first table, as kubectl's do.
                if widths == nil {
                    rows.insert(listing.header(wide: wide), at: 0)
                    widths = Table.widths(rows)
                }
                printOut(Table.render(rows, widths: widths!))
            }
        }

        /// Prints new and changed objects, and the last state of those gone.
        func refresh() async throws(ControlError) {
            let now = try await listing.objects(client)
            var changed: [ObjectListing.Object] = []
            var seen = Set<String>()
            for o in now {
                let key = o.namespace + "/" + o.name, text = YAMLEmitter.emit(o.node)
                seen.insert(key)
                if shown[key]?.text != text { changed.append(o) }
                shown[key] = (o, text)
            }
            for (key, gone) in shown where !seen.contains(key) {
                changed.append(gone.object)
                shown[key] = nil
            }
            show(changed)
        }

        try await refresh()
        if shown.isEmpty && (output == nil || output == "wide") {
            printOut(ns.allNamespaces ? "No resources found" : "No resources found in \(ns.effective) namespace.")
        }
        // Events wake the re-listing; a burst while it runs becomes one more re-list.
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let path = "/v1/events?watch=1&after=\(past.last?.id ?? 0)&" + ns.query
        let events = Task {
            defer { wake.finish() }
            try await client.stream(path) { _ in
                wake.yield()
                return true
            }
        }
        for await _ in wakes { try await refresh() }
        try await events.value
    }
}
