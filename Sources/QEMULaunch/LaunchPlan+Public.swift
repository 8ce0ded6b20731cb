/// Public initializers so that another planner (VMLaunch) produces the same
/// `LaunchPlan` the runtime and sandbox already serve for boards.
extension LaunchPlan {
    public init(targetName: String, namespace: String, binary: String, arguments: [String], channels: [PlannedChannel],
                accel: String, profile: String, guestMemoryBytes: UInt64, cpus: Int, blockDrives: [BlockDrive],
                workingDirectory: String, passedFiles: [PassedFile] = [], warnings: [String] = []) {
        self.init(targetName: targetName, namespace: namespace, binary: binary, arguments: arguments, channels: channels,
                  passedFiles: passedFiles, gdbSocketPath: nil, accel: accel, profile: profile, warnings: warnings)
        self.guestMemoryBytes = guestMemoryBytes
        self.cpus = cpus
        self.blockDrives = blockDrives
        self.workingDirectory = workingDirectory
    }
}

extension PlannedChannel {
    public static func planned(device: String, role: Role, transport: Transport, chardevID: String) -> PlannedChannel {
        PlannedChannel(device: device, role: role, transport: transport, chardevID: chardevID, rfc2217Port: nil, canFaults: nil)
    }
}

extension BlockDrive {
    public static func planned(name: String, fileNode: String, formatNode: String, deviceID: String?, readOnly: Bool) -> BlockDrive {
        BlockDrive(name: name, fileNode: fileNode, formatNode: formatNode, deviceID: deviceID, readOnly: readOnly)
    }
}

extension PassedFile {
    public static func planned(path: String, childFD: Int32, writable: Bool) -> PassedFile {
        PassedFile(path: path, childFD: childFD, writable: writable)
    }
}
