#if canImport(Glibc)
import Glibc
#endif
import DiskImages
import Foundation
import HostOS
import InstanceContract
import VMLaunch
import VMSpec

/// Makes the files one VM start needs, from names to host paths: an overlay
/// on each store image (the image is never written), fresh empty disks, the
/// named volumes that outlive the VM, cloud-init seeds, the EFI vars copy.
/// Everything per start lives in QEMU's directory and goes with it.
public struct VMPreparation: Sendable {
    public var qemuImg: QemuImg
    public var store: ImageStore
    public var seeds: CloudInitSeed
    /// Where PVCs, DataVolumes and Viti disks live: `<state>/volumes`, or a
    /// configured storage class's directory.
    public var volumes: VolumeLocations
    public var allowHostPaths: Bool
    /// A hostDisk runs on a qcow2 overlay in QEMU's directory, the host file
    /// its read-only base: for a pool member, whose writes a release
    /// discards anyway. `savevm` then has a qcow2 for every writable drive
    /// (a raw one would make each release a reboot), and members never
    /// write the one host file together.
    public var overlayHostDisks = false
    /// Overlays on store images, empty disks and seed ISOs copied from
    /// the ones made before from the same inputs (`TemplateCache`), not
    /// made by qemu-img or genisoimage again at each start; nil makes each.
    public var templates: TemplateCache?

    public init(qemuImg: QemuImg, store: ImageStore, seeds: CloudInitSeed, volumes: VolumeLocations, allowHostPaths: Bool) {
        self.qemuImg = qemuImg
        self.store = store
        self.seeds = seeds
        self.volumes = volumes
        self.allowHostPaths = allowHostPaths
    }

    /// KubeVirt's volume label for a configMap or secret disk.
    public static let configVolumeLabel = "cfgdata"

    /// The disks' host files, by disk name. `volumeData` holds each
    /// configMap volume's keys, by disk name (`RunnableVM.volumeData`).
    public func disks(for vm: VMDefinition, in qemuDirectory: String,
                      volumeData: [String: [String: [UInt8]]] = [:]) async throws -> [String: VMHostInputs.DiskBacking] {
        // Each disk is its own file (or tool run: qemu-img, the ISO writer), so
        // they are made at once: a VM's start waits for the slowest, not the sum.
        // The namespace's volume directory first: two new volumes must not race to make it.
        for dir in Set(vm.disks.compactMap { d -> String? in
            guard case .volume(_, _, let storageClass, _) = d.source else { return nil }
            return volumes.directory(namespace: vm.metadata.namespace, storageClass: storageClass)
        }) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        return try await withThrowingTaskGroup(of: (String, VMHostInputs.DiskBacking).self) { group in
            for (index, disk) in vm.disks.enumerated() {
                // By position, not by name: disk names are the user's and may hold anything.
                let own = qemuDirectory + "/disk\(index)"
                let data = volumeData[disk.name]
                group.addTask { (disk.name, try await backing(disk, vm: vm, own: own, data: data)) }
            }
            var out: [String: VMHostInputs.DiskBacking] = [:]
            for try await (name, backing) in group { out[name] = backing }
            return out
        }
    }

    /// The same files as `disks`, named but not made: what `render` shows.
    /// Only the image store is read, for the images' paths and formats.
    public func plannedDisks(for vm: VMDefinition, in qemuDirectory: String) throws -> [String: VMHostInputs.DiskBacking] {
        var out: [String: VMHostInputs.DiskBacking] = [:]
        for (index, disk) in vm.disks.enumerated() {
            let own = qemuDirectory + "/disk\(index)"
            switch disk.source {
            case .image(let reference, _):
                let (image, format) = try resolveDisk(reference, disk)
                out[disk.name] = .init(path: own + ".qcow2", format: .qcow2, base: .init(path: image.path, format: format == .qcow2 ? .qcow2 : .raw))
            case .empty: out[disk.name] = .init(path: own + ".qcow2", format: .qcow2)
            case .volume(let name, _, let storageClass, _):
                out[disk.name] = .init(path: volumes.path(name, namespace: vm.metadata.namespace, storageClass: storageClass), format: .qcow2)
            case .hostDisk(let path, _, _): out[disk.name] = .init(path: path, format: .raw)
            case .cloudInit, .configMap, .secret: out[disk.name] = .init(path: own + ".iso", format: .raw, readOnly: true)
            }
        }
        return out
    }

    private func resolve(_ reference: String, at: String, what: String) throws -> ImageStore.Resolved {
        do {
            return try store.resolve(reference)
        } catch where error.code == .notFound {
            throw RuntimeError("\(at)\(what): image \(reference) is not in the local store; "
                + "add it with `vtarget image pull \(reference)` or `vtarget image import \(reference) FILE`", code: .notFound)
        } catch {
            throw RuntimeError("\(at)\(what): image \(reference): \(error)", code: error.code == .badReference ? .badInput : .io, cause: error)
        }
    }

    /// A store image a disk boots from: a disk, not a file tree.
    private func resolveDisk(_ reference: String, _ disk: VMDisk) throws -> (ImageStore.Resolved, QemuImg.Format) {
        let at = disk.location.map { "\($0): " } ?? ""
        let image = try resolve(reference, at: at, what: "disk \(disk.name)")
        guard let format = image.format.disk else {
            throw RuntimeError("\(at)disk \(disk.name): image \(reference) is a file tree (a kernelBoot image), not a disk; "
                + "name it in domain.firmware.kernelBoot.container.image, or import a qcow2 or raw disk", code: .badInput)
        }
        return (image, format)
    }

    /// kernelBoot's kernel and initrd, unpacked from their file-tree image
    /// into QEMU's directory (`vmlinuz`, `initrd`), where a sandboxed QEMU
    /// opens them by a relative name. With `materialize` false (render)
    /// they are named and checked against the image's file list, not made.
    public func kernelFiles(for vm: VMDefinition, in qemuDirectory: String, materialize: Bool) async throws -> VMHostInputs.KernelFiles? {
        guard let kb = vm.kernelBoot else { return nil }
        let at = "\(vm.metadata.location): "
        let image = try resolve(kb.image, at: at, what: "kernelBoot")
        guard image.format == .tar, let files = image.files else {
            throw RuntimeError("\(at)kernelBoot: image \(kb.image) is a \(image.format.rawValue) disk, not a file tree; "
                + "import the directory (or tar) holding the kernel: `vtarget image import \(kb.image) DIR`", code: .badInput)
        }
        var out: [String?] = []
        for (member, name, field) in [(kb.kernelPath, "vmlinuz", "kernelPath"), (kb.initrdPath, "initrd", "initrdPath")] {
            guard let member else { out.append(nil); continue }
            let wanted = member.drop { $0 == "/" }
            guard files.contains(where: { $0 == wanted }) else {
                let held = files.prefix(8).map { "/" + $0 }.joined(separator: ", ") + (files.count > 8 ? ", ..." : "")
                throw RuntimeError("\(at)kernelBoot.container.\(field): image \(kb.image) has no file \(member); it holds \(held)", code: .badInput)
            }
            let path = qemuDirectory + "/" + name
            if materialize {
                do {
                    try await store.extractFile(member, of: image, to: path)
                } catch {
                    throw RuntimeError("\(at)kernelBoot.container.\(field): \(error)", code: .io, cause: error)
                }
            }
            out.append(path)
        }
        guard let kernel = out[0] else {
            // An initrd alone: KubeVirt accepts it and the domain has no kernel; QEMU needs one.
            throw RuntimeError("\(at)kernelBoot.container: an initrdPath without a kernelPath cannot boot; give kernelPath", code: .badInput)
        }
        return .init(kernel: kernel, initrd: out[1])
    }

    /// A volume whose claim now asks for more than it holds grows to the
    /// request before QEMU opens it, as an expanded PVC does (the guest sees
    /// the bigger disk; growing its file system is the guest's business).
    /// A smaller request leaves it as it is: a claim may be bound to a
    /// bigger volume, and Kubernetes refuses to shrink one.
    private func growVolume(_ name: String, at path: String, to capacity: UInt64, what: String) async throws {
        let size: UInt64
        if let read = QCOW2Header.virtualSize(ofFile: path) {
            size = read
        } else {
            do {
                size = try await qemuImg.info(path: path).virtualSize
            } catch {
                throw RuntimeError("\(what): volume \(name) at \(path) cannot be read: \(error)", code: .io, cause: error)
            }
        }
        guard capacity > size else { return }
        do {
            try await qemuImg.grow(path, to: capacity)
        } catch {
            throw RuntimeError("\(what): volume \(name) holds \(size) bytes and its claim asks for \(capacity); growing it failed "
                + "(is a running VM using it?): \(error)", code: .io, cause: error)
        }
        FileDescriptors.writeAll(2, Array("vtarget: \(what): volume \(name) grown from \(size) to \(capacity) bytes, as its claim asks\n".utf8))
    }

    /// A named volume's first making: empty at its size, or filled as its
    /// DataVolume says (a store image or another volume, copied whole, then
    /// grown to the size asked for). Written beside its place and linked in,
    /// so a failed copy leaves nothing, and of two starts racing to make it,
    /// the second uses the first's.
    private func makeVolume(_ name: String, at path: String, capacity: UInt64?, content: VolumeContent?, disk: VMDisk, namespace: String) async throws {
        let at = disk.location.map { "\($0): " } ?? ""
        let partial = path + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(partial); unlink(partial + ".download") }
        let source: (path: String, format: QemuImg.Format, what: String)
        switch content {
        case nil, .blank?:
            guard let capacity else {
                throw RuntimeError("\(at)disk \(disk.name): volume \(namespace)/\(name) "
                    + "does not exist yet and has no size to make it with; make it with a DataVolume template "
                    + "(dataVolumeTemplates, with resources.requests.storage) or put a qcow2 at \(path)", code: .badInput)
            }
            try await qemuImg.create(path: path, format: .qcow2, size: capacity)
            return
        case .image(let reference)?:
            let (image, format) = try resolveDisk(reference, disk)
            source = (image.path, format, "image \(reference)")
        case .clone(let fromNamespace, let original)?:
            // The source's class is its own claim's: look in every volume directory.
            let ns = fromNamespace ?? namespace
            guard let from = volumes.existing(original, namespace: ns) else {
                throw RuntimeError("\(at)disk \(disk.name): the volume to clone, \(ns)/\(original), does not exist; "
                    + "start the VM that makes it first (or give source.registry)", code: .notFound)
            }
            source = (from, .qcow2, "volume \(ns)/\(original)")
        case .http(let url)?:
            source = (partial + ".download", try await download(url, to: partial + ".download", at: "\(at)disk \(disk.name)"), url)
        }

        // A whole disk's copy may take minutes: not the metadata-only default deadline.
        var copier = qemuImg
        copier.timeoutSeconds = 3600
        do {
            try await copier.convert(source.path, from: source.format, to: partial, format: .qcow2)
            if let capacity {
                let size = try await qemuImg.info(path: partial).virtualSize
                if capacity < size {
                    throw RuntimeError("\(at)disk \(disk.name): \(source.what) is a \(size)-byte disk, bigger than the \(capacity) bytes "
                        + "the DataVolume asks for; ask for at least its size", code: .badInput)
                }
                if capacity > size { try await qemuImg.grow(partial, to: capacity) }
            }
        } catch let error as QemuImgError {
            throw RuntimeError("\(at)disk \(disk.name): copying \(source.what) into its volume: \(error)", code: .io, cause: error)
        }
        if link(partial, path) != 0 && errno != EEXIST {
            throw RuntimeError("\(at)disk \(disk.name): cannot place the volume at \(path): \(String(cString: strerror(errno)))", code: .io)
        }
    }

    /// A DataVolume's http source, fetched once: a raw or self-contained
    /// qcow2 disk, gzip- or xz-compressed or not, as CDI imports them (a qcow2
    /// that names other files, or any other format, is refused).
    private func download(_ url: String, to path: String, at what: String) async throws -> QemuImg.Format {
        FileDescriptors.writeAll(2, Array("vtarget: \(what): importing \(url)\n".utf8))
        do {
            _ = try await HTTPDownload.fetch(url, to: path)
        } catch {
            throw RuntimeError("\(what): \(error.message)", code: error.code == .notFound ? .notFound : .io, cause: error)
        }
        if let compression = Compression.sniff(FileDescriptors.head(path, 6)) {
            // Undone into a file of its own, then put in the download's place: what follows reads one file either way.
            let plain = path + ".plain"
            do {
                try await compression.decompress(path, to: plain)
            } catch {
                throw RuntimeError("\(what): \(url) is \(compression.rawValue)-compressed, and \(error)",
                                   code: error.code == .unsupportedImage ? .badInput : .io, cause: error)
            }
            guard rename(plain, path) == 0 else {
                unlink(plain)
                throw RuntimeError("\(what): cannot place the decompressed \(url) at \(path): \(String(cString: strerror(errno)))", code: .io)
            }
        }
        let info = try await qemuImg.info(path: path)
        if info.backingFilename != nil || info.formatSpecific?.data?.dataFile != nil || info.format != "qcow2" && info.format != "raw" {
            throw RuntimeError("\(what): \(url) is not a raw or self-contained qcow2 disk (qemu-img sees \(info.format)"
                + (info.backingFilename.map { " backed by \($0)" } ?? "") + ")", code: .badInput)
        }
        return info.format == "qcow2" ? .qcow2 : .raw
    }

    private func backing(_ disk: VMDisk, vm: VMDefinition, own: String, data: [String: [UInt8]]?) async throws -> VMHostInputs.DiskBacking {
        let at = disk.location.map { "\($0): " } ?? ""
        switch disk.source {
        case .image(let reference, _):
            let (image, format) = try resolveDisk(reference, disk)
            let overlay = own + ".qcow2"
            try await qemuImg.create(path: overlay, format: .qcow2, size: nil,
                                     backing: QemuImg.Backing(path: image.path, format: format), templates: templates)
            return .init(path: overlay, format: .qcow2, base: .init(path: image.path, format: format == .qcow2 ? .qcow2 : .raw))
        case .empty(let capacity):
            let path = own + ".qcow2"
            try await qemuImg.create(path: path, format: .qcow2, size: capacity, templates: templates)
            return .init(path: path, format: .qcow2)
        case .volume(let name, let capacity, let storageClass, let content):
            // Its directory is made by `disks`, before the disks are made at once.
            let namespace = vm.metadata.namespace
            let path = volumes.path(name, namespace: namespace, storageClass: storageClass)
            if access(path, F_OK) != 0 {
                if let elsewhere = volumes.existing(name, namespace: namespace) {
                    // Kubernetes keeps a claim's storageClassName as it was bound; a volume is never silently made anew empty.
                    throw RuntimeError("\(at)disk \(disk.name): volume \(namespace)/\(name) already exists at \(elsewhere), "
                        + "in another storage class's directory than \(storageClass.map { "class \($0)'s" } ?? "the default one") (\(path)); "
                        + "a claim's storage class does not change once its volume is made: name its class as before, "
                        + "or move the file (mv \(elsewhere) \(path))", code: .badInput)
                }
                try await makeVolume(name, at: path, capacity: capacity, content: content, disk: disk, namespace: namespace)
            } else if let capacity {
                try await growVolume(namespace + "/" + name, at: path, to: capacity, what: "\(at)disk \(disk.name)")
            }
            return .init(path: path, format: .qcow2)
        case .hostDisk(let path, let create, let capacity):
            guard allowHostPaths else {
                throw RuntimeError("\(at)disk \(disk.name): hostDisk \(path) needs --allow-host-paths", code: .badInput)
            }
            if access(path, F_OK) != 0 {
                guard create, let capacity else {
                    throw RuntimeError("\(at)disk \(disk.name): hostDisk \(path) does not exist (type Disk); use DiskOrCreate with a capacity to make it",
                                       code: .notFound)
                }
                try await qemuImg.create(path: path, format: .raw, size: capacity)
            }
            let info = try await qemuImg.info(path: path)
            let format: VMHostInputs.DiskFormat = info.format == "qcow2" ? .qcow2 : .raw
            guard overlayHostDisks else { return .init(path: path, format: format) }
            let overlay = own + ".qcow2"
            try await qemuImg.create(path: overlay, format: .qcow2, size: nil,
                                     backing: QemuImg.Backing(path: path, format: format == .qcow2 ? .qcow2 : .raw))
            return .init(path: overlay, format: .qcow2, base: .init(path: path, format: format))
        case .cloudInit(let c):
            // From Secrets (secretRef, networkDataSecretRef): their bytes, found by `Workload.vms`.
            if (c.userDataSecret != nil && data?["userdata"] == nil) || (c.networkDataSecret != nil && data?["networkdata"] == nil) {
                throw RuntimeError("\(at)disk \(disk.name): the cloud-init Secret (\(c.userDataSecret ?? c.networkDataSecret ?? "")) is not among the inputs; add it with -f",
                                   code: .badInput)
            }
            let user = c.userData.map { Array($0.utf8) } ?? data?["userdata"]
            let network = c.networkData ?? data?["networkdata"].map { String(decoding: $0, as: UTF8.self) }
            let files = try CloudInitFiles(flavor: c.flavor == .noCloud ? .noCloud : .configDrive,
                                           instanceID: CloudInitFiles.stableInstanceID(name: vm.metadata.name, namespace: vm.metadata.namespace),
                                           hostname: vm.hostname, userData: user, networkConfig: network)
            let path = own + ".iso"
            try await seeds.write(files, to: path, templates: templates)
            return .init(path: path, format: .raw, readOnly: true)
        case .configMap(let name), .secret(let name):
            // Each key a file at the ISO's root, as KubeVirt's config disks.
            var kind = "ConfigMap"
            if case .secret = disk.source { kind = "Secret" }
            guard let data else {
                throw RuntimeError("\(at)disk \(disk.name): \(kind) \(name) is not among the inputs; add it with -f", code: .badInput)
            }
            return try await configDisk(data, label: disk.volumeLabel ?? Self.configVolumeLabel, at: own + ".iso", what: "\(at)disk \(disk.name): \(kind) \(name)")
        }
    }

    /// A ConfigMap's or Secret's keys as files on an ISO labelled `label`
    /// (KubeVirt's `volumeLabel`, `cfgdata` by default).
    private func configDisk(_ data: [String: [UInt8]], label: String, at path: String, what: String) async throws -> VMHostInputs.DiskBacking {
        let files = data.keys.sorted().map { CloudInitFiles.File(path: $0, contents: data[$0] ?? []) }
        do {
            try await seeds.write(files: files, volumeLabel: label, to: path, templates: templates)
        } catch let error as CloudInitSeedError where error.code == .badInput {
            throw RuntimeError("\(what) key \(error.message)", code: .badInput, cause: error)
        }
        return .init(path: path, format: .raw, readOnly: true)
    }

    /// A pool member's scratch for `savevm` (`QemuImg.createSnapshotScratch`).
    public func snapshotScratch(in qemuDirectory: String) async throws -> String {
        try await qemuImg.createSnapshotScratch(in: qemuDirectory, templates: templates)
    }
}
