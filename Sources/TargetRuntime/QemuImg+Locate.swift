import HostOS
import DiskImages

extension QemuImg {
    /// qemu-img from `PATH`, found before anything is spawned.
    public init(environment: [String: String]) throws(RuntimeError) {
        guard let path = ExecutableSearch.find("qemu-img", environment: environment) else {
            throw RuntimeError("qemu-img not found (apt-get install qemu-utils); empty disks and pool snapshots need it")
        }
        self.init(executable: path)
    }
}
