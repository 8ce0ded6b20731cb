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
    /// `<state>/volumes`: PVCs, DataVolumes and Viti disks, by namespace.
    public var volumeRoot: String
    public var allowHostPaths: Bool

    public init(qemuImg: QemuImg, store: ImageStore, seeds: CloudInitSeed, volumeRoot: String, allowHostPaths: Bool) {
        self.qemuImg = qemuImg
        self.store = store
        self.seeds = seeds
        self.volumeRoot = volumeRoot
        self.allowHostPaths = allowHostPaths
    }

    /// The disks' host files, by disk name.
    public func disks(for vm: VMDefinition, in qemuDirectory: String) async throws -> [String: VMHostInputs.DiskBacking] {
        var out: [String: VMHostInputs.DiskBacking] = [:]
        for (index, disk) in vm.disks.enumerated() {
            // By position, not by name: disk names are the user's and may hold anything.
            let own = qemuDirectory + "/disk\(index)"
            out[disk.name] = try await backing(disk, vm: vm, own: own)
        }
        return out
    }

    /// The same files as `disks`, named but not made: what `render` shows.
    /// Only the image store is read, for the images' paths and formats.
    public func plannedDisks(for vm: VMDefinition, in qemuDirectory: String) throws -> [String: VMHostInputs.DiskBacking] {
        var out: [String: VMHostInputs.DiskBacking] = [:]
        for (index, disk) in vm.disks.enumerated() {
            let own = qemuDirectory + "/disk\(index)"
            switch disk.source {
            case .image(let reference, _):
                let image = try resolve(reference, disk)
                out[disk.name] = .init(path: own + ".qcow2", format: .qcow2, base: .init(path: image.path, format: image.format == .qcow2 ? .qcow2 : .raw))
            case .empty: out[disk.name] = .init(path: own + ".qcow2", format: .qcow2)
            case .volume(let name, _, _): out[disk.name] = .init(path: volumeRoot + "/" + vm.metadata.namespace + "/" + name + ".qcow2", format: .qcow2)
            case .hostDisk(let path, _, _): out[disk.name] = .init(path: path, format: .raw)
            case .cloudInit, .configMap, .secret: out[disk.name] = .init(path: own + ".iso", format: .raw)
            }
        }
        return out
    }

    private func resolve(_ reference: String, _ disk: VMDisk) throws -> ImageStore.Resolved {
        let at = disk.location.map { "\($0): " } ?? ""
        do {
            return try store.resolve(reference)
        } catch where error.code == .notFound {
            throw RuntimeError("\(at)disk \(disk.name): image \(reference) is not in the local store; "
                + "add it with `vtarget image pull \(reference)` or `vtarget image import \(reference) FILE`", code: .notFound)
        } catch {
            throw RuntimeError("\(at)disk \(disk.name): image \(reference): \(error)", code: error.code == .badReference ? .badInput : .io, cause: error)
        }
    }

    private func backing(_ disk: VMDisk, vm: VMDefinition, own: String) async throws -> VMHostInputs.DiskBacking {
        let at = disk.location.map { "\($0): " } ?? ""
        switch disk.source {
        case .image(let reference, _):
            let image = try resolve(reference, disk)
            let overlay = own + ".qcow2"
            try await qemuImg.create(path: overlay, format: .qcow2, size: nil,
                                     backing: QemuImg.Backing(path: image.path, format: image.format))
            return .init(path: overlay, format: .qcow2, base: .init(path: image.path, format: image.format == .qcow2 ? .qcow2 : .raw))
        case .empty(let capacity):
            let path = own + ".qcow2"
            try await qemuImg.create(path: path, format: .qcow2, size: capacity)
            return .init(path: path, format: .qcow2)
        case .volume(let name, let capacity, _):
            let dir = volumeRoot + "/" + vm.metadata.namespace
            let path = dir + "/" + name + ".qcow2"
            if access(path, F_OK) != 0 {
                guard let capacity else {
                    throw RuntimeError("\(at)disk \(disk.name): volume \(name) does not exist yet and has no size to make it with; "
                        + "give the claim a storage request (resources.requests.storage)", code: .badInput)
                }
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try await qemuImg.create(path: path, format: .qcow2, size: capacity)
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
            return .init(path: path, format: info.format == "qcow2" ? .qcow2 : .raw)
        case .cloudInit(let data):
            guard data.userDataSecret == nil, data.networkDataSecret == nil else {
                throw RuntimeError("\(at)disk \(disk.name): cloud-init from a Secret (secretRef) is not supported yet; give userData inline", code: .badInput)
            }
            let files = try CloudInitFiles(flavor: data.flavor == .noCloud ? .noCloud : .configDrive,
                                           instanceID: CloudInitFiles.stableInstanceID(name: vm.metadata.name, namespace: vm.metadata.namespace),
                                           hostname: vm.hostname, userData: data.userData.map { Array($0.utf8) }, networkConfig: data.networkData)
            let path = own + ".iso"
            try await seeds.write(files, to: path)
            return .init(path: path, format: .raw)
        case .configMap(let name), .secret(let name):
            throw RuntimeError("\(at)disk \(disk.name): configMap/secret volumes (\(name)) are not supported yet", code: .badInput)
        }
    }
}
