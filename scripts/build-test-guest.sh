#!/usr/bin/env bash
# Builds the guests vtarget's VM tests boot, from Debian's packages only, and
# prints the directory that holds them. Cached: the output lives in
#   ${VTARGET_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vtarget/guests}/<key>/
# where <key> hashes this script, scripts/guest/* and the versions apt would
# fetch, so a second run takes seconds and any change rebuilds. Builds go to a
# temporary directory renamed into place at the end (a killed build leaves no
# half guest), under a lock (two test runs never build the same key twice).
#
#   scripts/build-test-guest.sh           the busybox guest, x86_64 and arm64:
#     x86_64/vmlinuz, x86_64/initrd.gz    Debian's linux-image-cloud-amd64 and an
#                                         initramfs: busybox-static, the virtio /
#                                         cdrom / isofs / vfat / ata modules (with
#                                         their modules.dep dependencies, depmod
#                                         run) and scripts/guest/init.
#     x86_64/disk.qcow2                   the same kernel+initramfs on a FAT disk
#                                         with syslinux and systemd-boot (mtools,
#                                         no root, no mount): BIOS- or UEFI-boots
#                                         from a virtio or sata disk,
#                                         console=ttyS0. For kernelBoot,
#                                         pass "console=ttyS0 no_timer_check" (a
#                                         busy host can fail TCG's timer check).
#     arm64/vmlinuz, arm64/initrd.gz      linux-image-cloud-arm64 for `virt`
#                                         (console=ttyAMA0); fetched with a private
#                                         apt state directory, so the host's apt
#                                         never gains a foreign architecture.
#                                         VTARGET_GUEST_ARM64=0 skips it.
#   scripts/build-test-guest.sh --cloud   the real cloud-init guest (needs root:
#                                         debootstrap): a minbase bookworm with
#                                         systemd, cloud-init, openssh-server,
#                                         qemu-guest-agent and the cloud kernel.
#     disk.qcow2                          ext4 root filesystem (mkfs.ext4 -d, no
#                                         mount), root=/dev/vda, no partition table
#     vmlinuz, initrd.img                 the rootfs's own kernel and initrd, for
#                                         kernelBoot: root=/dev/vda console=ttyS0
#   --cached                              print the directory only if that guest
#                                         is built already; exit 3 if not (tests
#                                         use it to decide whether to run)
#
# The busybox guest's /init (scripts/guest/init) finds the cloud-init seed by
# label (cidata = NoCloud meta-data/user-data, config-2 = ConfigDrive
# openstack/latest/meta_data.json, user_data), sets the hostname, runs a `#!`
# user-data, takes a DHCP lease on eth0, serves HTTP on port 8080 and keeps a
# shell on the console; it prints "vtarget-guest: hostname=X", "user-data ran
# exit=N", "ip=A.B.C.D", "http on :8080" and "ready". `poweroff -f` ends it,
# and so does the power button (busybox acpid: ACPI's, or gpio-keys on arm64
# virt), after "vtarget-guest: power button"; a user-data `killall acpid`
# makes a guest that ignores it.
#
# Packages come through apt only (apt-get download + dpkg-deb -x; debootstrap
# uses the Debian mirror the host's apt sources name, or VTARGET_DEBIAN_MIRROR).
# Host tools: apt, dpkg, cpio, gzip, kmod (depmod, modprobe), mtools, syslinux,
# qemu-utils, e2fsprogs, debootstrap (scripts/setup.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${VTARGET_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vtarget/guests}"
mode=busybox
cached_only=0
for arg in "$@"; do
    case "$arg" in
        --cloud) mode=cloud ;;
        --cached) cached_only=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-test-guest: unknown argument '$arg' (valid: --cloud, --cached, --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$cache"
log() { echo "build-test-guest: $*" >&2; }

# The modules the busybox guest loads (and its init modprobes, in this order).
GUEST_MODULES="virtio_pci virtio_mmio virtio_blk virtio_net virtio_console virtio_rng virtio_scsi
  sd_mod sr_mod cdrom isofs vfat nls_cp437 nls_ascii nls_iso8859-1 ata_piix ata_generic ahci e1000 e1000e
  evdev button gpio_keys"

# --- apt: the host's lists for amd64; a private state directory for arm64 ----
arm64_apt_dir="$cache/apt-arm64"
arm64_apt=(-o APT::Architecture=arm64 -o APT::Architectures=arm64
           -o Dir::State::Lists="$arm64_apt_dir/lists" -o Dir::Cache="$arm64_apt_dir/cache"
           -o Dir::State::status="$arm64_apt_dir/status" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt_opts() { if [ "$1" = arm64 ]; then printf '%s\n' "${arm64_apt[@]}"; fi; }
ensure_arm64_lists() {
    if [ ! -f "$arm64_apt_dir/updated" ]; then
        mkdir -p "$arm64_apt_dir/lists/partial" "$arm64_apt_dir/cache/archives/partial"
        : >"$arm64_apt_dir/status"
        log "fetching arm64 package lists into $arm64_apt_dir"
        apt-get "${arm64_apt[@]}" -qq update >&2
        touch "$arm64_apt_dir/updated"
    fi
}
# The concrete package a metapackage (linux-image-cloud-amd64) points at.
resolve_kernel() {
    local arch=$1 opts; mapfile -t opts < <(apt_opts "$arch")
    apt-cache "${opts[@]}" depends "linux-image-cloud-$arch" | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1
}
# versions ARCH PKG...: "pkg=candidate" per package, from one apt-cache run
# (each run costs a second or more: the cache key must be cheap).
versions() {
    local arch=$1 opts; shift; mapfile -t opts < <(apt_opts "$arch")
    apt-cache "${opts[@]}" policy "$@" | awk '/^[^ ]/ { p=$1; sub(/:$/, "", p) } /^ *Candidate:/ { print p "=" $2 }'
}
download() {  # download ARCH DIR PKG...
    local arch=$1 dir=$2 opts; shift 2; mapfile -t opts < <(apt_opts "$arch")
    mkdir -p "$dir"; chmod 0755 "$dir"
    (cd "$dir" && apt-get "${opts[@]}" -qq -o APT::Sandbox::User=root download "$@" >&2)
}

# key_of "FUNCTIONS" VALUE...: a hash of the named functions' text (as bash
# prints them: comments and layout elsewhere in this file do not count),
# scripts/guest/* and the values (package versions, mirror). Editing the
# busybox part never rebuilds the 5-minute cloud guest, and the reverse.
key_of() {
    local funcs=$1; shift
    # shellcheck disable=SC2086
    { declare -f $funcs; cat "$here"/guest/*; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

# --- the busybox guest --------------------------------------------------------
# build_initrd ARCH WORK OUT: kernel + initramfs for one architecture.
build_initrd() {
    local arch=$1 work=$2 out=$3 kpkg kver root mod line
    kpkg=$(resolve_kernel "$arch")
    download "$arch" "$work/debs" "$kpkg" busybox-static
    dpkg-deb -x "$work"/debs/linux-image-*.deb "$work/kernel"
    dpkg-deb -x "$work"/debs/busybox-static_*.deb "$work/busybox"
    kver=$(ls "$work/kernel/lib/modules")
    depmod -b "$work/kernel" "$kver"

    root="$work/initramfs"
    mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,usr/bin,usr/sbin,lib/modules/"$kver"}
    cp "$work/busybox/bin/busybox" "$root/bin/busybox"
    # A foreign busybox may not run here: the host-arch one of the same
    # version (built first) names the applets.
    "$work/busybox/bin/busybox" --list-full >"$work/applets" 2>/dev/null && cp "$work/applets" "$work/../applets" ||
        cp "$work/../applets" "$work/applets" 2>/dev/null || : >"$work/applets"
    # -L as well as -e: a link to /bin/busybox dangles here unless the host has a busybox of its own.
    present() { [ -e "$1" ] || [ -L "$1" ]; }
    for applet in $(cat "$work/applets"); do
        present "$root/$applet" || ln -s /bin/busybox "$root/$applet"
    done
    # Whatever the list said, the applets init uses.
    for applet in sh mount umount mkdir sed tr head cat cp chmod sleep hostname findfs modprobe insmod ip udhcpc httpd init poweroff reboot mdev ls echo grep ps dmesg uname acpid printf sync killall; do
        present "$root/bin/$applet" || present "$root/sbin/$applet" || present "$root/usr/bin/$applet" || present "$root/usr/sbin/$applet" ||
            ln -s /bin/busybox "$root/bin/$applet"
    done
    : >"$root/etc/guest-modules"
    for mod in $GUEST_MODULES; do
        if ! modprobe -d "$work/kernel" -S "$kver" --show-depends "$mod" >"$work/deps" 2>/dev/null; then
            log "$arch: $mod is not in $kpkg; skipped"; continue
        fi
        while read -r line; do
            case "$line" in insmod\ *) line=${line#insmod }; line=${line%% *}
                local rel=${line#"$work/kernel/lib/modules/$kver/"}
                mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
                cp "$line" "$root/lib/modules/$kver/$rel" ;;
            esac
        done <"$work/deps"
        echo "$mod" >>"$root/etc/guest-modules"
    done
    cp "$work/kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/" 2>/dev/null || true
    depmod -b "$root" "$kver"
    cp "$here/guest/init" "$root/init"
    cp "$here/guest/udhcpc.script" "$root/etc/udhcpc.script"
    chmod 0755 "$root/init" "$root/etc/udhcpc.script"
    echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
    echo "root:x:0:" >"$root/etc/group"
    echo 'export PS1="\h:\w# "' >"$root/etc/profile"
    mkdir -p "$out"
    (cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9 >"$out/initrd.gz")
    cp "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
    chmod 0644 "$out/vmlinuz" "$out/initrd.gz"
    echo "$kpkg" >"$out/kernel-package"
}

# build_disk DIR WORK: kernel + initramfs on one FAT filesystem (no partition
# table) that boots both ways, as qcow2: by BIOS through syslinux, and by UEFI
# (OVMF) through systemd-boot as the removable-media loader \EFI\BOOT\BOOTX64.EFI
# with one loader entry. The same kernel command line either way.
build_disk() {
    local dir=$1 work=$2 img=$1/disk.raw kib
    # no_timer_check: under TCG on a busy host the kernel's IO-APIC timer
    # check can fail ("..MP-BIOS bug ... failed :(") and panic the boot.
    local append="console=ttyS0 panic=-1 no_timer_check"
    download amd64 "$work/efi-debs" systemd-boot-efi
    dpkg-deb -x "$work"/efi-debs/systemd-boot-efi_*.deb "$work/efi"
    kib=$(( ($(stat -c %s "$dir/vmlinuz") + $(stat -c %s "$dir/initrd.gz") + $(stat -c %s "$work/efi/usr/lib/systemd/boot/efi/systemd-bootx64.efi")) / 1024 + 4096 ))
    truncate -s "${kib}K" "$img"
    mformat -i "$img" -v VTGUEST -N 0 ::
    syslinux --install "$img"
    printf 'DEFAULT guest\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\nLABEL guest\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND %s\n' "$append" >"$work/syslinux.cfg"
    printf 'default guest.conf\ntimeout 0\n' >"$work/loader.conf"
    printf 'title vtarget test guest\nlinux /vmlinuz\ninitrd /initrd.gz\noptions %s\n' "$append" >"$work/guest.conf"
    mmd -i "$img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
    mcopy -i "$img" "$work/efi/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$img" "$work/loader.conf" ::/loader/loader.conf
    mcopy -i "$img" "$work/guest.conf" ::/loader/entries/guest.conf
    mcopy -i "$img" "$dir/vmlinuz" "$dir/initrd.gz" "$work/syslinux.cfg" ::
    qemu-img convert -q -f raw -O qcow2 "$img" "$dir/disk.qcow2"
    rm -f "$img"
}

build_busybox() {
    local vx with_arm64=${VTARGET_GUEST_ARM64:-1} va="" key dir work
    # The metapackage's version changes with every kernel it points at.
    vx=$(versions amd64 linux-image-cloud-amd64 busybox-static systemd-boot-efi)
    [[ "$vx" == *linux-image-cloud-amd64=* && "$vx" != *"=(none)"* ]] ||
        { log "apt has no candidate for linux-image-cloud-amd64 or busybox-static (run apt-get update)"; exit 1; }
    if [ "$with_arm64" = 1 ]; then ensure_arm64_lists; va=$(versions arm64 linux-image-cloud-arm64 busybox-static); fi
    key=busybox-$(key_of "build_initrd build_disk build_busybox resolve_kernel download" "$GUEST_MODULES" "$vx" "arm64:$va")
    dir="$cache/$key"
    if [ ! -f "$dir/complete" ] && [ "$cached_only" = 1 ]; then log "$key is not built yet"; exit 3; fi
    if [ ! -f "$dir/complete" ]; then
        exec 9>"$cache/.lock-$key"; flock 9
        if [ ! -f "$dir/complete" ]; then
            local start=$SECONDS
            work=$(mktemp -d "$cache/.build-XXXXXX")
            # Expanded now: at exit the function's variables are gone (set -u).
            trap "rm -rf '$work'" EXIT
            log "building $key ($(echo $vx))"
            build_initrd amd64 "$work/amd64" "$work/out/x86_64"
            build_disk "$work/out/x86_64" "$work/amd64"
            if [ "$with_arm64" = 1 ]; then
                log "building arm64 ($(echo $va))"
                build_initrd arm64 "$work/arm64" "$work/out/arm64"
            fi
            echo "$((SECONDS - start)) s" >"$work/out/build-time"
            touch "$work/out/complete"
            rm -rf "$dir"; mv "$work/out" "$dir"
            rm -rf "$work"; trap - EXIT
            log "built in $((SECONDS - start)) s"
        fi
    fi
    echo "$dir"
}

# --- the cloud-init guest -----------------------------------------------------
# The Debian mirror (and suite) the host's apt already uses: deb822 or one-line.
host_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |\n|$)/ && !/Enabled: *no/ { if (match($0, /URIs: *[^ \n]+/)) { s=substr($0, RSTART, RLENGTH); sub(/URIs: */, "", s); print s; exit } }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1=="deb" { if ($2 ~ /^\[/) { u=$3; s=$4 } else { u=$2; s=$3 }; if (s=="bookworm") { print u; exit } }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
}

CLOUD_PACKAGES=systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,locales,openssh-server,qemu-guest-agent,linux-image-cloud-amd64,initramfs-tools,ifupdown,isc-dhcp-client,iproute2,netbase,sudo,e2fsprogs

build_cloud() {
    local mirror key dir work
    mirror=${VTARGET_DEBIAN_MIRROR:-$(host_mirror)}
    [ -n "$mirror" ] || { log "no bookworm source in /etc/apt/sources.list*; set VTARGET_DEBIAN_MIRROR"; exit 1; }
    [ "$(id -u)" = 0 ] || { log "--cloud runs debootstrap, which needs root (CI runs as root; here: sudo $0 --cloud)"; exit 1; }
    command -v debootstrap >/dev/null || { log "debootstrap missing (scripts/setup.sh installs it)"; exit 1; }
    key=cloud-$(key_of "build_cloud host_mirror" "$mirror" "$CLOUD_PACKAGES" "$(versions amd64 linux-image-cloud-amd64 cloud-init systemd openssh-server)")
    dir="$cache/$key"
    if [ ! -f "$dir/complete" ] && [ "$cached_only" = 1 ]; then log "$key is not built yet"; exit 3; fi
    if [ ! -f "$dir/complete" ]; then
        exec 9>"$cache/.lock-$key"; flock 9
        if [ ! -f "$dir/complete" ]; then
            local start=$SECONDS t root size
            work=$(mktemp -d "$cache/.build-XXXXXX")
            trap "rm -rf '$work'" EXIT
            root="$work/rootfs"
            log "debootstrap bookworm from $mirror"
            debootstrap --variant=minbase --include="$CLOUD_PACKAGES" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
                { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
            t=$SECONDS; log "debootstrap took $((t - start)) s"
            echo "/dev/vda / ext4 defaults,errors=remount-ro 0 1" >"$root/etc/fstab"
            echo "debian" >"$root/etc/hostname"
            printf 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n' >"$root/etc/network/interfaces"
            sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' "$root/etc/locale.gen"
            chroot "$root" locale-gen >/dev/null
            echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
            # Only the NoCloud and ConfigDrive seeds exist here: skip probing for clouds.
            # manage_etc_hosts as Debian's cloud images: sudo resolves the new hostname.
            printf 'datasource_list: [ NoCloud, ConfigDrive, None ]\nmanage_etc_hosts: true\n' >"$root/etc/cloud/cloud.cfg.d/90-vtarget.cfg"
            systemctl --root="$root" enable serial-getty@ttyS0.service >/dev/null 2>&1 || true
            rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
            mkdir -p "$work/out"
            cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
            cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
            chmod 0644 "$work/out/vmlinuz" "$work/out/initrd.img"
            size=$(( $(du -sm "$root" | cut -f1) * 3 / 2 + 512 ))
            mkfs.ext4 -q -F -L rootfs -d "$root" "$work/root.raw" "${size}M" >&2
            qemu-img convert -q -f raw -O qcow2 "$work/root.raw" "$work/out/disk.qcow2"
            echo "$mirror" >"$work/out/mirror"
            echo "debootstrap $((t - start)) s, image $((SECONDS - t)) s" >"$work/out/build-time"
            touch "$work/out/complete"
            rm -rf "$dir"; mv "$work/out" "$dir"
            rm -rf "$work"; trap - EXIT
            log "built $key in $((SECONDS - start)) s (image $((SECONDS - t)) s)"
        fi
    fi
    echo "$dir"
}

if [ "$mode" = cloud ]; then build_cloud; else build_busybox; fi
