#!/usr/bin/env python3
"""Writes an OCI image layout holding a KubeVirt containerDisk: one layer, a
tar with each given file under disk/ (what `skopeo copy oci:DIR:TAG docker://...`
then pushes). Standard library only.

usage: oci_layout.py DIR TAG FILE [FILE...] [--gzip] [--platforms amd64,arm64] [--under DIR]
--under puts the files under another directory than disk/ (boot/: a
kernelBoot container).
With --platforms, TAG names an image index with one manifest per architecture
(all with the same layer); without, TAG names a single linux/amd64 manifest.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(root, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def layer_tar(files, under="disk"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo(under + "/")
        d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o555, 107, 107
        tar.addfile(d)
        for path in files:
            info = tar.gettarinfo(path, arcname=under + "/" + os.path.basename(path))
            info.uid, info.gid, info.uname, info.gname, info.mode = 107, 107, "", "", 0o440
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def main(argv):
    gz = "--gzip" in argv
    platforms = None
    under = "disk"
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "--gzip":
            pass
        elif argv[i] == "--platforms":
            i += 1
            platforms = argv[i].split(",")
        elif argv[i] == "--under":
            i += 1
            under = argv[i]
        else:
            args.append(argv[i])
        i += 1
    root, tag, files = args[0], args[1], args[2:]
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    raw = layer_tar(files, under)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    if gz:
        layer = blob(root, gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    else:
        layer = blob(root, raw, "application/vnd.oci.image.layer.v1.tar")

    def manifest(arch):
        config = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}}
        c = blob(root, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c, "layers": [layer]}
        d = blob(root, json.dumps(m).encode(), "application/vnd.oci.image.manifest.v1+json")
        d["platform"] = {"architecture": arch, "os": "linux"}
        return d

    if platforms:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest(a) for a in platforms]}
        top = blob(root, json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")
    else:
        top = manifest("amd64")
        del top["platform"]
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)
    print(layer["digest"])


if __name__ == "__main__":
    main(sys.argv[1:])
