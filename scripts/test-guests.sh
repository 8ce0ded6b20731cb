#!/usr/bin/env bash
# The VM tests' guests for `make test`, built (or found in their cache) while
# the Swift build runs. From a cold cache they take ~3 min (busybox ~30 s,
# debootstrap of the cloud-init guest ~2.5 min), most of it downloads and
# dpkg waiting on the disk: time the compiler on both cores barely loses, and
# which `make test` used to spend before its first test, doing nothing else.
#
#   start  starts scripts/build-test-guest.sh in the background (the busybox
#          guest, then the cloud-init guest: built when run as root, as CI
#          does; otherwise only taken when already cached)
#   wait   waits for it; prints its log on stderr and the tests' environment
#          on stdout (VTARGET_TEST_GUEST=... lines, for `export $(...)`);
#          exits 1 when a guest that must be built was not
#
# `wait` without a `start` before it builds the guests in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.build/test-guests

build() {
    local busybox cloud
    busybox=$(bash scripts/build-test-guest.sh) || { echo "the busybox guest was not built" >"$dir/failed"; return; }
    if [ "$(id -u)" = 0 ]; then
        cloud=$(bash scripts/build-test-guest.sh --cloud) || { echo "the cloud-init guest was not built" >"$dir/failed"; return; }
    else
        cloud=$(bash scripts/build-test-guest.sh --cloud --cached 2>/dev/null || true)
    fi
    printf 'VTARGET_TEST_GUEST=%s\nVTARGET_TEST_GUEST_ARM64=%s\nVTARGET_TEST_CLOUD_GUEST=%s\n' "$busybox" "$busybox" "$cloud" >"$dir/env"
}

case "${1:-}" in
start)
    rm -rf "$dir"
    mkdir -p "$dir"
    # Its own session: a ^C to make does not cut the build short; it ends and
    # is cached for the next run (build-test-guest.sh renames a guest into
    # its cache only when it is whole).
    setsid -w bash -c "$(declare -f build); dir=$dir; build" </dev/null >/dev/null 2>"$dir/log" &
    echo $! >"$dir/pid"
    ;;
wait)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    else
        # Nothing of an earlier run's (a guest that failed then) is taken.
        rm -rf "$dir"
        mkdir -p "$dir"
        build 2>"$dir/log"
    fi
    cat "$dir/log" >&2
    if [ -f "$dir/failed" ]; then echo "test-guests: $(cat "$dir/failed")" >&2; exit 1; fi
    [ -f "$dir/env" ] || { echo "test-guests: the guest build ended without naming its guests" >&2; exit 1; }
    cat "$dir/env"
    ;;
*)
    echo "usage: $0 start|wait" >&2
    exit 2
    ;;
esac
