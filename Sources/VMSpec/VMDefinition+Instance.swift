import ResourceKit

extension VMDefinition {
    /// This VM run as instance `name` (a pool's member or a
    /// VirtualTargetInstance): renamed, and with its own of each volume the
    /// VM makes, as each VM of a KubeVirt VirtualMachinePool gets its own
    /// DataVolumes (there `<template>-<index>`, here
    /// `<template>-<instance>`) and a Viti Machine's disks are named for
    /// the machine (`<instance>-<disk>`). Two instances of one VM would
    /// otherwise open one file, which QEMU's lock refuses to the second.
    /// Claims and DataVolumes of their own stay shared, as on a cluster.
    public func running(as name: String) -> VMDefinition {
        var vm = self
        vm.metadata.name = name
        for i in vm.disks.indices {
            guard let owner = vm.disks[i].owner, owner != .instance,
                  case .volume(let volume, let capacity, let storageClass, let content) = vm.disks[i].source else { continue }
            let own = Self.instanceVolume(volume, owner: owner, disk: vm.disks[i].name, instance: name)
            vm.disks[i].source = .volume(name: own, capacityBytes: capacity, storageClass: storageClass, content: content)
            vm.disks[i].owner = .instance
        }
        return vm
    }

    /// The name of an instance's own copy of `volume`.
    static func instanceVolume(_ volume: String, owner: VolumeOwner, disk: String, instance: String) -> String {
        owner == .machine ? instance + "-" + disk : volume + "-" + instance
    }

    /// The volumes `running(as: instance)` would make whose names are not
    /// valid (longer than a DNS label's 63 characters).
    public func invalidInstanceVolumes(instance: String) -> [(disk: VMDisk, name: String)] {
        zip(disks, running(as: instance).disks).compactMap { before, after in
            guard before.owner != after.owner, case .volume(let own, _, _, _) = after.source, !Names.isDNSLabel(own) else { return nil }
            return (before, own)
        }
    }
}
