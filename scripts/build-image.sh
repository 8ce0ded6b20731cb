#!/bin/bash
# Builds the OCI image of the Containerfile without a container daemon:
#   Debian bookworm with the Containerfile's packages, made by mmdebstrap
#   once and cached (a base image in an OCI layout under
#   ${XDG_CACHE_HOME:-~/.cache}/vtarget/image-base/<key>, the key a hash of
#   the package list and options), then the release binary as a layer of its
#   own on top (umoci insert), the entrypoint and user set (umoci config).
#
# Usage: scripts/build-image.sh [--binary PATH] [--out DIR] [--image NAME] [--tag TAG]
#   prints the image reference as an OCI layout path, `DIR:TAG`; copy it to a
#   registry with `skopeo copy oci:DIR:TAG docker://HOST/NAME:TAG`.
# As root it runs as it is; unprivileged, mmdebstrap uses user namespaces and
# umoci --rootless.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=.build/release/vtarget
out=.build/image
image=localhost/vtarget
tag=$(sed -n 's/^ *version: "\(.*\)",$/\1/p' Sources/VTargetCommands/VTarget.swift | head -n1)
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "build-image: unknown argument '$1' (valid: --binary PATH, --out DIR, --image NAME, --tag TAG)" >&2; exit 2 ;;
    esac
done
[ -n "$tag" ] || { echo "build-image: no tag (and no version in Sources/VTargetCommands/VTarget.swift)" >&2; exit 2; }
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "build-image: '$tag' is not a valid tag" >&2; exit 2; }
[ -x "$binary" ] || { echo "build-image: $binary is missing; run \`make release\` first" >&2; exit 2; }
for tool in mmdebstrap umoci; do
    command -v $tool >/dev/null || { echo "build-image: $tool is missing; run scripts/setup.sh" >&2; exit 2; }
done

log() { echo "build-image: $*" >&2; }
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)

# The Containerfile's packages: one list, read from it.
packages=$(sed -n '/apt-get install/,/rm -rf/p' Containerfile | tr ' \\' '\n\n' | grep -E '^(qemu|lib|ca-)' | sort | paste -sd, -)
options=(--variant=minbase '--aptopt=APT::Install-Recommends "false"' '--dpkgopt=path-exclude=/usr/share/doc/*'
         '--dpkgopt=path-exclude=/usr/share/man/*' '--dpkgopt=path-exclude=/usr/share/locale/*')
key=$(printf '%s\n%s\nbookworm\n' "$packages" "${options[*]}" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/vtarget/image-base"
base="$cache/$key"
mkdir -p "$cache"
exec 9>"$cache/.lock-$key"; flock 9
if [ ! -f "$base/complete" ]; then
    log "making the Debian base with $packages (cached as $base)"
    rm -rf "$base"; mkdir -p "$base"
    mmdebstrap "${options[@]}" --include="$packages" bookworm "$base/rootfs.tar" >&2
    umoci init --layout "$base/oci"
    umoci new --image "$base/oci:base"
    umoci unpack "${rootless[@]}" --image "$base/oci:base" "$base/bundle" >/dev/null
    tar -xf "$base/rootfs.tar" -C "$base/bundle/rootfs"
    umoci repack --image "$base/oci:base" "$base/bundle"
    rm -rf "$base/bundle" "$base/rootfs.tar"
    touch "$base/complete"
fi

rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -a "$base/oci" "$out"
umoci tag --image "$out:base" "$tag"
umoci rm --image "$out:base"
umoci insert "${rootless[@]}" --image "$out:$tag" "$binary" /usr/local/bin/vtarget
umoci config --image "$out:$tag" \
    --config.entrypoint vtarget --config.user 1000:1000 --config.workingdir / \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.label "org.opencontainers.image.title=vtarget" \
    --config.label "org.opencontainers.image.ref.name=$image:$tag" \
    --author vtarget
umoci gc --layout "$out"
log "$image:$tag is $out:$tag"
echo "$out:$tag"
