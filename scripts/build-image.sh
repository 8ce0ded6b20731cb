#!/bin/bash
# Builds the OCI image of the Containerfile without a container daemon:
#   Debian bookworm with the Containerfile's packages, made by mmdebstrap
#   from the host's own Debian apt sources, once, and cached (an OCI layout
#   under ${XDG_CACHE_HOME:-~/.cache}/vtarget/image-base/<key>, the key a hash
#   of the package list, the options, the sources and the candidate versions
#   apt-cache gives for the packages); then the release binary and the
#   machine profiles as a layer of their own on top, and the entrypoint and
#   user set (umoci raw add-layer, umoci config). Both layers are tar files
#   added as they are, so umoci never needs root.
#
# Usage: scripts/build-image.sh [--binary PATH] [--out DIR] [--image NAME] [--tag TAG]
#   prints the image reference as an OCI layout path, `DIR:TAG`; copy it to a
#   registry with `skopeo copy oci:DIR:TAG docker://HOST/NAME:TAG`.
#   A failed build leaves DIR as it was (the new layout is renamed into place
#   only when complete) and no temporary files.
#
# Privileges: as root, mmdebstrap --mode=root. As a normal user,
#   mmdebstrap --mode=unshare when the user has subordinate ids in /etc/subuid
#   and /etc/subgid and newuidmap is installed (uidmap; useradd gives new users
#   their ranges); else --mode=fakechroot (fakechroot and fakeroot installed).
#   The mode is printed when the base is made. VTARGET_IMAGE_MODE=root|unshare|fakechroot
#   forces one.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=.build/release/vtarget
out=.build/image
image=localhost/vtarget
tag=$(sed -n 's/^ *version: "\(.*\)",$/\1/p' Sources/VTargetCommands/VTarget.swift | head -n1)
suite=bookworm
while [ $# -gt 0 ]; do
    case "$1" in
        --binary|--out|--image|--tag)
            [ $# -ge 2 ] || { echo "build-image: $1 needs a value" >&2; exit 2; }
            case "$1" in --binary) binary=$2 ;; --out) out=$2 ;; --image) image=$2 ;; --tag) tag=$2 ;; esac
            shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image: unknown argument '$1' (valid: --binary PATH, --out DIR, --image NAME, --tag TAG)" >&2; exit 2 ;;
    esac
done
[ -n "$tag" ] || { echo "build-image: no tag (and no version in Sources/VTargetCommands/VTarget.swift)" >&2; exit 2; }
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || { echo "build-image: --tag '$tag' is not a valid tag (letters, digits, _ . -; at most 128, not starting with . or -)" >&2; exit 2; }
[[ "$image" =~ ^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$ ]] || { echo "build-image: --image '$image' is not a valid image name (lower-case letters, digits, . _ - / and a registry host[:port])" >&2; exit 2; }
[ -n "$out" ] && [ "$out" != / ] || { echo "build-image: --out needs a directory" >&2; exit 2; }
[ -x "$binary" ] || { echo "build-image: $binary is missing; run \`make release\` first" >&2; exit 2; }
for tool in mmdebstrap umoci strip; do
    command -v $tool >/dev/null || { echo "build-image: $tool is missing; run scripts/setup.sh" >&2; exit 2; }
done

log() { echo "build-image: $*" >&2; }

# Everything temporary lives in one directory, removed however the script ends.
work="" new=""
cleanup() { rm -rf ${work:+"$work"} ${new:+"$new"}; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# How mmdebstrap may run as this user.
has_subids() {
    local who; who=$(id -un)
    grep -qE "^($who|$(id -u)):" /etc/subuid 2>/dev/null && grep -qE "^($who|$(id -u)):" /etc/subgid 2>/dev/null
}
mode=${VTARGET_IMAGE_MODE:-}
if [ -z "$mode" ]; then
    if [ "$(id -u)" = 0 ]; then mode=root
    elif command -v newuidmap >/dev/null && command -v newgidmap >/dev/null && has_subids && unshare -U true 2>/dev/null; then mode=unshare
    elif command -v fakechroot >/dev/null && command -v fakeroot >/dev/null; then mode=fakechroot
    else
        echo "build-image: as a normal user mmdebstrap needs user namespaces (the uidmap package and your ranges in /etc/subuid and /etc/subgid)" \
             "or fakechroot and fakeroot; install them (scripts/setup.sh does) or run as root" >&2
        exit 2
    fi
fi
case "$mode" in root|unshare|fakechroot) ;; *) echo "build-image: VTARGET_IMAGE_MODE='$mode' (valid: root, unshare, fakechroot)" >&2; exit 2 ;; esac

# The Containerfile's packages: one list, read from it.
packages=$(sed -n '/apt-get install/,/rm -rf/p' Containerfile | tr ' \\' '\n\n' | grep -E '^(qemu|lib|ca-)' | sort | paste -sd, -)
options=(--variant=minbase '--aptopt=APT::Install-Recommends "false"' '--dpkgopt=path-exclude=/usr/share/doc/*'
         '--dpkgopt=path-exclude=/usr/share/man/*' '--dpkgopt=path-exclude=/usr/share/locale/*')

# The host's Debian sources for the suite (what its apt-get uses), else deb.debian.org.
mapfile -t sources < <(apt-get indextargets --format '$(ORIGIN)|$(REPO_URI)|$(RELEASE)|$(COMPONENT)' 'Created-By: Packages' 2>/dev/null \
    | awk -F'|' -v s="$suite" '$1 == "Debian" && ($3 == s || index($3, s "-") == 1) { print "deb " $2 " " $3 " " $4 }' | sort -u)
if [ ${#sources[@]} -eq 0 ]; then
    sources=("deb http://deb.debian.org/debian $suite main" "deb http://deb.debian.org/debian $suite-updates main"
             "deb http://deb.debian.org/debian-security $suite-security main")
    versions="(host has no $suite sources)"
else
    # The versions the host's apt would install from those sources.
    versions=$(apt-cache policy ${packages//,/ } 2>/dev/null | awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }')
fi
key=$(printf '%s\n' "$packages" "${options[*]}" "$suite" "${sources[@]}" "$versions" | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/vtarget/image-base"
base="$cache/$key"
mkdir -p "$cache"
work=$(mktemp -d "$cache/.tmp.XXXXXX")
exec 9>"$cache/.lock-$key"; flock 9
if [ ! -f "$base/complete" ]; then
    log "making the Debian base ($suite: $packages) with mmdebstrap --mode=$mode; cached as $base"
    started=$SECONDS
    mmdebstrap --mode="$mode" "${options[@]}" --include="$packages" "$suite" "$work/rootfs.tar" "${sources[@]}" </dev/null >&2
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:base"
    umoci raw add-layer --image "$work/oci:base" --history.created_by "mmdebstrap $suite $packages" "$work/rootfs.tar"
    rm -f "$work/rootfs.tar"
    rm -rf "$base"
    mkdir "$base"
    mv "$work/oci" "$base/oci"
    touch "$base/complete"
    log "base made in $((SECONDS - started)) s"
fi
exec 9>&-

# The binary (its debug information stripped: some 40% smaller) and the
# built-in machine profiles it looks for beside it in ../share/vtarget, owned
# by root, as a layer of their own.
mkdir -p "$work/layer/usr/local/bin" "$work/layer/usr/local/share/vtarget/machines"
install -m 0755 "$binary" "$work/layer/usr/local/bin/vtarget"
strip --strip-debug "$work/layer/usr/local/bin/vtarget"
install -m 0644 machines/*.yaml "$work/layer/usr/local/share/vtarget/machines/"
tar -C "$work/layer" --owner=0 --group=0 --numeric-owner --sort=name -cf "$work/layer.tar" usr

# The new layout is made beside --out (one filesystem) and renamed into place.
mkdir -p "$(dirname "$out")"
new=$(mktemp -d "$(dirname "$out")/.$(basename "$out").new.XXXXXX")
cp -a "$base/oci" "$new/oci"
umoci tag --image "$new/oci:base" "$tag"
umoci rm --image "$new/oci:base"
umoci raw add-layer --image "$new/oci:$tag" --history.created_by "COPY vtarget /usr/local/bin/vtarget" "$work/layer.tar"
umoci config --image "$new/oci:$tag" \
    --config.entrypoint vtarget --config.user 1000:1000 --config.workingdir / \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.label "org.opencontainers.image.title=vtarget" \
    --config.label "org.opencontainers.image.ref.name=$image:$tag" \
    --author vtarget
umoci gc --layout "$new/oci"

# Only a complete layout takes the place of the old one.
rm -rf "$out"
mv "$new/oci" "$out"
log "$image:$tag is $out:$tag"
echo "$out:$tag"
