extension QemuImg {
    /// `create` through `templates`: a copy of the image this qemu-img
    /// made before from the same format, size and backing file (its path
    /// and, through its size, time and inode, its contents). An overlay
    /// records its backing file's path, format and size and nothing of its
    /// own making, so a copy is what `create` would write. No `templates`:
    /// `create` itself.
    public func create(path: String, format: Format, size: UInt64?, backing: Backing? = nil, templates: TemplateCache?) async throws {
        guard let templates else { return try await create(path: path, format: format, size: size, backing: backing) }
        var fields = ["qemu-img create", TemplateCache.identity(of: executable) ?? executable, format.rawValue, size.map { "\($0)" } ?? "-"]
        if let backing {
            // Missing: `create` says so in qemu-img's words.
            guard let base = TemplateCache.identity(of: backing.path) else {
                return try await create(path: path, format: format, size: size, backing: backing)
            }
            fields += [backing.format.rawValue, base]
        }
        try await templates.file(.init(fields), at: path) { made throws(QemuImgError) in
            try await create(path: made, format: format, size: size, backing: backing)
        }
    }

    /// `convert` through `templates`: a copy of what this qemu-img made
    /// before from the same source file (path, size, time, inode) into the
    /// same format (an EFI vars template as qcow2). No `templates`: `convert` itself.
    public func convert(_ source: String, from sourceFormat: Format, to path: String, format: Format, templates: TemplateCache?) async throws {
        guard let templates, let from = TemplateCache.identity(of: source) else {
            return try await convert(source, from: sourceFormat, to: path, format: format)
        }
        let key = TemplateCache.Key(["qemu-img convert", TemplateCache.identity(of: executable) ?? executable, sourceFormat.rawValue, from, format.rawValue])
        try await templates.file(key, at: path) { made throws(QemuImgError) in
            try await convert(source, from: sourceFormat, to: made, format: format)
        }
    }
}
