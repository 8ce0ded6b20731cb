import MachineCatalog
import TargetSpec
import YAMLTree

/// The drives' share of the command line: firmware loaded into memory
/// (`-kernel`, `-bios`, the loader device) and every image as two -blockdev
/// nodes attached to a device, a machine property or a legacy flash drive.
struct DrivePlanner {
    static let snapshotDrive = "vt.snapshot"

    let profile: MachineProfile
    let passImagesAsFDs: Bool
    /// The next fd number free in the child, after the socket pairs.
    var nextFD: Int32
    /// QEMU's cwd: images in it are named relative to it (see `LaunchPlan.relative`).
    let workingDirectory: String
    private(set) var arguments: [String] = []
    private(set) var passedFiles: [PassedFile] = []
    private(set) var blockDrives: [BlockDrive] = []
    private var names = BlockNodeNames()
    private var fdSets = 0
    private var pflashUnit = 0

    init(profile: MachineProfile, passImagesAsFDs: Bool, nextFD: Int32, workingDirectory: String = "") {
        self.profile = profile
        self.passImagesAsFDs = passImagesAsFDs
        self.nextFD = nextFD
        self.workingDirectory = workingDirectory
    }

    mutating func add(_ resolved: ResolvedDrive, _ fail: (SourceLocation?, String, String) -> Void) {
        // The path as QEMU names it; fd sets still open the host path.
        var r = resolved
        r.path = LaunchPlan.relative(resolved.path, to: workingDirectory)
        let d = r.drive
        func image(_ flag: String) {
            if r.format == .qcow2 {
                fail(d.location, d.path + ".format", "a qcow2 image cannot be loaded as \(d.kind.rawValue)")
            } else if r.format == .ihex {
                arguments += ["-device", QEMUOption("loader", [("file", r.path)]).description]
            } else {
                arguments += [flag, r.path]
            }
        }
        switch (d.kind, profile.pflash) {
        case (.kernel, _), (.pflash, .kernel): image("-kernel")
        case (.bios, _), (.pflash, .bios): image("-bios")
        case (.pflash, .pflash): addFlash(r)
        case (.disk, _), (.cdrom, _):
            let device = (d.kind == .disk ? profile.diskDevice : profile.cdromDevice) ?? "virtio-blk-pci"
            if d.readOnly, QEMUDevice.writableOnly.contains(device) {
                fail(d.location, d.path + ".readonly", "\(profile.name) attaches disks as \(device), which QEMU will not open read-only")
                return
            }
            let path = passImagesAsFDs ? fdSet(resolved.path, writable: !d.readOnly) : r.path
            let drive = nodes(d.name, path: path, format: r.format == .qcow2 ? .qcow2 : .raw, readOnly: d.readOnly, device: true)
            arguments += ["-device", QEMUJSON.argument(QEMUDevice(driver: device, id: drive.deviceID!, drive: drive.formatNode))]
        }
    }

    /// A scratch qcow2 that only holds `savevm` state: a format node no
    /// device uses, which `savevm` picks as the one writable image that can
    /// hold snapshots.
    mutating func addSnapshotImage(_ path: String) {
        _ = nodes(Self.snapshotDrive, path: passImagesAsFDs ? fdSet(path, writable: true) : LaunchPlan.relative(path, to: workingDirectory),
                  format: .qcow2, readOnly: false, device: false)
    }

    /// Parallel flash is raw; the image stays a path (firmware is copied
    /// into QEMU's own directory when QEMU runs as another uid).
    private mutating func addFlash(_ r: ResolvedDrive) {
        defer { pflashUnit += 1 }
        let d = r.drive
        switch profile.flashAttachment {
        case .property:
            let drive = nodes(d.name, path: r.path, format: .raw, readOnly: d.readOnly, device: false)
            arguments += ["-machine", QEMUOption(nil, [("pflash\(pflashUnit)", drive.formatNode)]).description]
        case .drive:
            let file = names.claim("file", d.name), format = names.claim("fmt", d.name)
            var pairs = [("if", "pflash"), ("unit", "\(pflashUnit)"), ("format", "raw"), ("file", r.path),
                         ("node-name", format), ("file.node-name", file)]
            if d.readOnly { pairs.append(("read-only", "on")) }
            arguments += ["-drive", QEMUOption(nil, pairs).description]
            blockDrives.append(BlockDrive(name: d.name, fileNode: file, formatNode: format, deviceID: nil, readOnly: d.readOnly))
        }
    }

    /// Both -blockdev nodes of one image.
    private mutating func nodes(_ name: String, path: String, format: BlockdevNode.Driver, readOnly: Bool, device: Bool) -> BlockDrive {
        let drive = BlockDrive(name: name, fileNode: names.claim("file", name), formatNode: names.claim("fmt", name),
                               deviceID: device ? names.claim("dev", name) : nil, readOnly: readOnly)
        arguments += ["-blockdev", QEMUJSON.argument(BlockdevNode.file(drive.fileNode, path: path, readOnly: readOnly)),
                      "-blockdev", QEMUJSON.argument(BlockdevNode.format(format, drive.formatNode, over: drive.fileNode, readOnly: readOnly))]
        blockDrives.append(drive)
        return drive
    }

    /// Hands the image over as fds in a new `-add-fd` set and returns the
    /// path QEMU opens instead. QEMU reopens an image read-only while it
    /// probes and a set only hands out fds of the asked access mode, so a
    /// writable image needs both.
    private mutating func fdSet(_ path: String, writable: Bool) -> String {
        fdSets += 1
        for w in writable ? [true, false] : [false] {
            let file = PassedFile(path: path, childFD: nextFD, writable: w)
            nextFD += 1
            passedFiles.append(file)
            arguments += ["-add-fd", QEMUOption(nil, [("fd", "\(file.childFD)"), ("set", "\(fdSets)")]).description]
        }
        return "/dev/fdset/\(fdSets)"
    }
}
