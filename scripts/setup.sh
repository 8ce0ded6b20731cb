#!/usr/bin/env bash
# Installs what vtarget needs on Debian, idempotently: a second run takes seconds.
# apt packages: QEMU (with OVMF and AAVMF), libyaml, libseccomp, the ARM cross compiler, socat,
# gdb-multiarch; for the VM tests and the image store: genisoimage (cloud-init seeds), mtools,
# syslinux, cpio, kmod, e2fsprogs, debootstrap (scripts/build-test-guest.sh), OpenSSH's client,
# qemu-guest-agent (the guest-agent client's tests),
# docker-registry and skopeo (a local registry for `image pull` tests), tar, xz-utils (xz-compressed
# DataVolume http sources), curl; mmdebstrap and
# umoci (`make image`: the container image, without a daemon), uidmap and fakechroot (its
# unprivileged modes: user namespaces, or fakechroot for a user without subordinate ids).
# PyPI (into .venv): real clients for interop tests (python-can, qemu.qmp, pyserial, junitparser)
# and Kubernetes schema checkers (kubernetes-validate, jsonschema).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(qemu-system-arm qemu-system-x86 qemu-utils libyaml-dev libseccomp-dev libsqlite3-dev zlib1g-dev pkg-config
          gcc-arm-none-eabi binutils make socat python3-venv gdb-multiarch ovmf qemu-efi-aarch64 genisoimage mtools syslinux syslinux-common cpio kmod e2fsprogs debootstrap openssh-client qemu-guest-agent docker-registry skopeo tar xz-utils curl mmdebstrap umoci uidmap fakechroot can-utils)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: swift is not on PATH; install Swift 6 (https://www.swift.org/install/linux/) and run again" >&2
    exit 1
fi

# Interop clients for the tests, from PyPI only.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import can, qemu.qmp, serial, junitparser, jsonschema, kubernetes_validate' 2>/dev/null; then
    echo "setup: creating .venv with python-can, qemu.qmp, pyserial, junitparser, kubernetes-validate, jsonschema"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check python-can qemu.qmp pyserial junitparser kubernetes-validate jsonschema
fi
echo "setup: ok"
